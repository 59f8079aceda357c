package policy

import (
	"slices"
	"testing"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// TestBestEffortWarningsReachTheUser: a verification admitted with a
// warning (revocation not checked in BestEffort mode) is among the
// decision's warnings, naming image, policy and authority; a failed
// authority's warnings are not (its failure is reported instead).
func TestBestEffortWarningsReachTheUser(t *testing.T) {
	skipped := "revocation of signing job arn:aws:signer:us-west-2:123456789012:/signing-jobs/j1 not checked: could not check revocation with AWS Signer in us-west-2: no answer in time; admitted because revocation is BestEffort"
	d := Decision{Images: []ImageDecision{{
		Path: "spec.containers[0].image", Image: "registry.test/app@sha256:" + hex64, Digest: "sha256:" + hex64, Verdict: VerdictAdmitted,
		Policies: []PolicyResult{{Policy: "prod", Mode: v1alpha1.ModeEnforce, Satisfied: true, SatisfiedBy: "signer", Authorities: []AuthorityResult{
			{Name: "kms", Result: Result{Reason: ReasonNoSignature, Warnings: []string{"ignored"}}},
			{Name: "signer", Result: Result{Reason: ReasonVerified, Warnings: []string{skipped}}},
		}}},
	}}}
	want := []string{`image registry.test/app@sha256:` + hex64 + ` (spec.containers[0].image) admitted by ClusterImagePolicy "prod" (authority "signer") with a warning: ` + skipped}
	if got := d.Warnings(); !slices.Equal(got, want) {
		t.Fatalf("warnings\n got %q\nwant %q", got, want)
	}
	if !d.Allowed() {
		t.Fatal("a BestEffort warning must not deny")
	}
}
