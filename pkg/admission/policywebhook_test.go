package admission

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/store"
)

// fakeFactory stands in for the verifier factory: data "bad" does not
// parse, KMS aliases under alias/missing cannot be fetched.
func fakeFactory(_ context.Context, a v1alpha1.Authority, _ []byte) (policy.Verifier, error) {
	switch {
	case a.Key != nil && a.Key.Data == "bad":
		return nil, &policy.InvalidAuthorityError{Field: "key.data", Value: "(PEM)", Msg: "PEM does not contain a public key"}
	case a.Key != nil && a.Key.KMS == "awskms:///alias/missing":
		return nil, errors.New("KMS GetPublicKey awskms:///alias/missing: NotFoundException: Alias alias/missing is not found.")
	}
	return &digestVerifier{}, nil
}

func cip(name string, images []string, authorities ...v1alpha1.Authority) *v1alpha1.ClusterImagePolicy {
	p := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterImagePolicySpec{Authorities: authorities}}
	for _, g := range images {
		p.Spec.Images = append(p.Spec.Images, v1alpha1.ImageGlob{Glob: g})
	}
	return p
}

func kms(name, uri string) v1alpha1.Authority {
	return v1alpha1.Authority{Name: name, Key: &v1alpha1.KeyAuthority{KMS: uri}}
}

func TestPolicyValidator(t *testing.T) {
	reader := fake.NewClientBuilder().WithObjects(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "keys", Name: "cosign"}, Data: map[string][]byte{"cosign.pub": []byte("PEM")},
	}).Build()
	v := PolicyValidator{NewVerifier: fakeFactory, ReadSecret: store.SecretReader(reader), Timeout: 5 * time.Second}
	secretRef := func(ns, name, key string) v1alpha1.Authority {
		return v1alpha1.Authority{Name: "pem", Key: &v1alpha1.KeyAuthority{SecretRef: &v1alpha1.SecretKeyReference{Namespace: ns, Name: name, Key: key}}}
	}
	tests := []struct {
		name         string
		policy       *v1alpha1.ClusterImagePolicy
		wantErr      string
		wantFields   []string
		wantWarnings ctrladmission.Warnings
	}{
		{name: "valid", policy: cip("ok", []string{"registry.test/**"}, kms("ci", "awskms:///alias/ci"), secretRef("keys", "cosign", "cosign.pub"))},
		{
			name:       "bad globs, every one reported",
			policy:     cip("globs", []string{"registry.test//app", "registry.test/***", "registry.test/ok"}, kms("ci", "awskms:///alias/ci")),
			wantErr:    `ClusterImagePolicy.signet.dev "globs" is invalid: [spec.images[0].glob: Invalid value: "registry.test//app": must not have empty path segments, spec.images[1].glob: Invalid value: "registry.test/***": '***' is not a wildcard: use '*' within a segment or '**' across segments]`,
			wantFields: []string{"spec.images[0].glob", "spec.images[1].glob"},
		},
		{
			name:       "PEM that does not parse",
			policy:     cip("pem", []string{"registry.test/**"}, v1alpha1.Authority{Name: "pem", Key: &v1alpha1.KeyAuthority{Data: "bad"}}),
			wantErr:    `ClusterImagePolicy.signet.dev "pem" is invalid: spec.authorities[0].key.data: Invalid value: "(PEM)": PEM does not contain a public key`,
			wantFields: []string{"spec.authorities[0].key.data"},
		},
		{
			name:       "secretRef to a missing Secret",
			policy:     cip("nosecret", []string{"registry.test/**"}, secretRef("keys", "absent", "cosign.pub")),
			wantErr:    `ClusterImagePolicy.signet.dev "nosecret" is invalid: spec.authorities[0].key.secretRef: Invalid value: "keys/absent[cosign.pub]": secrets "absent" not found`,
			wantFields: []string{"spec.authorities[0].key.secretRef"},
		},
		{
			name:       "secretRef to a missing key",
			policy:     cip("nokey", []string{"registry.test/**"}, secretRef("keys", "cosign", "other.pub")),
			wantErr:    `ClusterImagePolicy.signet.dev "nokey" is invalid: spec.authorities[0].key.secretRef: Invalid value: "keys/cosign[other.pub]": Secret keys/cosign has no key "other.pub"`,
			wantFields: []string{"spec.authorities[0].key.secretRef"},
		},
		{
			name:   "KMS key that cannot be fetched: admitted with a warning per authority",
			policy: cip("nokms", []string{"registry.test/**"}, kms("ci", "awskms:///alias/missing"), kms("ok", "awskms:///alias/ci"), kms("dr", "awskms:///alias/missing")),
			wantWarnings: ctrladmission.Warnings{
				`ClusterImagePolicy "nokms" is not ready: authority "ci": KMS GetPublicKey awskms:///alias/missing: NotFoundException: Alias alias/missing is not found. Images it governs are denied until Signet can load the authority; it keeps retrying (kubectl describe clusterimagepolicy nokms shows the reason).`,
				`ClusterImagePolicy "nokms" is not ready: authority "dr": KMS GetPublicKey awskms:///alias/missing: NotFoundException: Alias alias/missing is not found. Images it governs are denied until Signet can load the authority; it keeps retrying (kubectl describe clusterimagepolicy nokms shows the reason).`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warnings, err := v.ValidateCreate(context.Background(), tt.policy)
			if !reflect.DeepEqual(warnings, tt.wantWarnings) {
				t.Errorf("warnings\n got %q\nwant %q", warnings, tt.wantWarnings)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error\n got %v\nwant %s", err, tt.wantErr)
			}
			var status *apierrors.StatusError
			if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
				t.Fatalf("not an Invalid status: %#v", err)
			}
			var fields []string
			for _, c := range status.ErrStatus.Details.Causes {
				fields = append(fields, c.Field)
			}
			if !reflect.DeepEqual(fields, tt.wantFields) {
				t.Fatalf("fields %q, want %q", fields, tt.wantFields)
			}
		})
	}
}

func TestPolicyValidatorUpdate(t *testing.T) {
	v := PolicyValidator{NewVerifier: fakeFactory, Timeout: 5 * time.Second}
	broken := cip("p", []string{"registry.test//app"}, kms("ci", "awskms:///alias/ci"))
	relabelled := broken.DeepCopy()
	relabelled.Labels = map[string]string{"team": "a"}
	if w, err := v.ValidateUpdate(context.Background(), broken, relabelled); err != nil || w != nil {
		t.Fatalf("an update that leaves the spec alone was judged: %v %v", w, err)
	}
	fixed := relabelled.DeepCopy()
	fixed.Spec.Images[0].Glob = "registry.test/app"
	if w, err := v.ValidateUpdate(context.Background(), broken, fixed); err != nil || w != nil {
		t.Fatalf("fixed policy: %v %v", w, err)
	}
	if _, err := v.ValidateUpdate(context.Background(), fixed, broken); !apierrors.IsInvalid(err) {
		t.Fatalf("breaking update admitted: %v", err)
	}
	if w, err := v.ValidateDelete(context.Background(), broken); err != nil || w != nil {
		t.Fatalf("delete: %v %v", w, err)
	}
}
