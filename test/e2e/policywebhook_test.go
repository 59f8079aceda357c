package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
)

var requestID = regexp.MustCompile(`request ID [0-9a-f-]+`)

// TestClusterImagePolicyWebhook: what CEL cannot check is rejected when the
// policy is applied, with field paths kubectl shows; an authority that is
// only unavailable is accepted with a warning.
func TestClusterImagePolicyWebhook(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	var warnings []string
	cfg := rest.CopyConfig(h.env.RESTConfig(t))
	cfg.WarningHandler = warningCollector(func(msg string) { warnings = append(warnings, msg) })
	c, err := client.New(cfg, client.Options{Scheme: h.c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// judged carries the label this suite's policy webhook selects.
	judged := func(p *v1alpha1.ClusterImagePolicy) *v1alpha1.ClusterImagePolicy {
		p.Labels = map[string]string{judgedLabel: "true"}
		return p
	}
	withKey := func(name string, key v1alpha1.KeyAuthority) *v1alpha1.ClusterImagePolicy {
		p := h.kmsPolicy(name, "registry.example.com/app", h.alias, v1alpha1.ModeEnforce)
		p.Spec.Authorities[0].Key = &key
		return judged(p)
	}
	absent := fmt.Sprintf("e2e-absent-%d", os.Getpid())
	withCondition := func(name, cond string) *v1alpha1.ClusterImagePolicy {
		p := h.kmsPolicy(name, "registry.example.com/app", h.alias, v1alpha1.ModeEnforce)
		p.Spec.Authorities[0].Key.Attestations = []v1alpha1.AttestationRequirement{{Name: "scan", PredicateType: "vuln", Condition: cond}}
		return judged(p)
	}
	const condition = "spec.authorities[0].key.attestations[0].condition"

	for _, tt := range []struct {
		name   string
		policy *v1alpha1.ClusterImagePolicy
		want   string // the whole message
		field  string
	}{
		{
			name:   "a glob CEL lets through",
			policy: judged(h.kmsPolicy("e2e-cip-glob", "registry.example.com//app", h.alias, v1alpha1.ModeEnforce)),
			want:   h.denial(t, "clusterimagepolicies", `ClusterImagePolicy.signet.dev "e2e-cip-glob" is invalid: spec.images[0].glob: Invalid value: "registry.example.com//app": must not have empty path segments`),
			field:  "spec.images[0].glob",
		},
		{
			name:   "PEM that does not parse",
			policy: withKey("e2e-cip-pem", v1alpha1.KeyAuthority{Data: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0C…pasted badly\n-----END PUBLIC KEY-----\n"}),
			want:   h.denial(t, "clusterimagepolicies", `ClusterImagePolicy.signet.dev "e2e-cip-pem" is invalid: spec.authorities[0].key.data: Invalid value: "(PEM)": parsing the PEM public key: PEM decoding failed`),
			field:  "spec.authorities[0].key.data",
		},
		{
			name:   "secretRef to a Secret that does not exist",
			policy: withKey("e2e-cip-secret", v1alpha1.KeyAuthority{SecretRef: &v1alpha1.SecretKeyReference{Namespace: "default", Name: absent, Key: "cosign.pub"}}),
			want:   h.denial(t, "clusterimagepolicies", fmt.Sprintf(`ClusterImagePolicy.signet.dev "e2e-cip-secret" is invalid: spec.authorities[0].key.secretRef: Invalid value: "default/%s[cosign.pub]": secrets "%s" not found`, absent, absent)),
			field:  "spec.authorities[0].key.secretRef",
		},
		{
			name:   "an attestation condition that does not compile",
			policy: withCondition("e2e-cip-cel", fixtures.UndeclaredCondition),
			want: `admission webhook "clusterimagepolicies.validate.signet.dev" denied the request: ClusterImagePolicy.signet.dev "e2e-cip-cel" is invalid: ` +
				condition + `: Invalid value: "` + fixtures.UndeclaredCondition + `": invalid CEL condition: ` + fixtures.UndeclaredConditionError,
			field: condition,
		},
		{
			name:   "an attestation condition over Kubernetes' cost limit",
			policy: withCondition("e2e-cip-cost", fixtures.CrossProductCondition),
			want: `admission webhook "clusterimagepolicies.validate.signet.dev" denied the request: ClusterImagePolicy.signet.dev "e2e-cip-cost" is invalid: ` +
				condition + `: Invalid value: "` + fixtures.CrossProductCondition + `": invalid CEL condition: ` + fixtures.CrossProductConditionError,
			field: condition,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Create(ctx, tt.policy)
			if err == nil {
				_ = c.Delete(ctx, tt.policy)
				t.Fatal("created")
			}
			if err.Error() != tt.want {
				t.Fatalf("got:  %v\nwant: %s", err, tt.want)
			}
			var status apierrors.APIStatus
			if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
				t.Fatalf("not 422 Invalid: %#v", err)
			}
			var fields []string
			for _, cause := range status.Status().Details.Causes {
				fields = append(fields, cause.Field)
			}
			if !reflect.DeepEqual(fields, []string{tt.field}) {
				t.Fatalf("field paths %q, want %q", fields, tt.field)
			}
		})
	}

	t.Run("a KMS alias that does not exist: created, with a warning", func(t *testing.T) {
		warnings = nil
		p := judged(h.kmsPolicy("e2e-cip-kms", "registry.example.com/app", "alias/e2e-does-not-exist", v1alpha1.ModeEnforce))
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.c.Delete(context.Background(), p) })
		want := []string{fmt.Sprintf(`ClusterImagePolicy "e2e-cip-kms" is not ready: authority "ci-kms": KMS GetPublicKey for awskms:///alias/e2e-does-not-exist: NotFoundException: Alias arn:aws:kms:%s:123456789012:alias/e2e-does-not-exist is not found. (request ID …). Images it governs are denied until Signet can load the authority; it keeps retrying (kubectl describe clusterimagepolicy e2e-cip-kms shows the reason).`, os.Getenv("AWS_REGION"))}
		// AWS request IDs differ per call.
		for i := range warnings {
			warnings[i] = requestID.ReplaceAllString(warnings[i], "request ID …")
		}
		if !reflect.DeepEqual(warnings, want) {
			t.Fatalf("warnings %q\nwant %q", warnings, want)
		}
	})
	t.Run("a valid policy: created, no warning", func(t *testing.T) {
		warnings = nil
		p := judged(h.kmsPolicy("e2e-cip-ok", "registry.example.com/app", h.alias, v1alpha1.ModeEnforce))
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.c.Delete(context.Background(), p) })
		if len(warnings) != 0 {
			t.Fatalf("warnings %q", warnings)
		}
	})
}
