package verify_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify"
)

// A signer authority listing attestations is refused, also when the policy
// did not pass the CRD's validation (which refuses it with the same words,
// see the CRD test): enforcing it without its attestations would admit what
// the policy's author meant to deny.
func TestSignerAttestationsAreRefused(t *testing.T) {
	cip := &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images: []v1alpha1.ImageGlob{{Glob: "registry.example.com/**"}},
			Authorities: []v1alpha1.Authority{{Name: "s", Signer: &v1alpha1.SignerAuthority{
				Profiles:     []string{"arn:aws:signer:us-east-1:123456789012:/signing-profiles/P1"},
				Attestations: []runtime.RawExtension{{Raw: []byte(`{"name":"scan","predicateType":"vuln"}`)}},
			}}},
		},
	}
	p, errs := policy.Compile(context.Background(), cip, (&verify.Verifiers{}).New, nil)
	want := "spec.authorities[0].signer.attestations: Invalid value: " + verify.SignerAttestationsRefused
	if len(errs) != 1 || errs[0].Error() != want {
		t.Fatalf("errors %v\nwant %s", errs, want)
	}
	if p.NotReady == nil {
		t.Fatal("the policy is enforced without its attestations")
	}
}
