package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
)

const (
	vulnURI  = "https://cosign.sigstore.dev/attestation/vuln/v1"
	slsa1URI = "https://slsa.dev/provenance/v1"
	// attestHint ends a denial for an attestation that fails.
	attestHint = "Attest this digest in your pipeline (cosign attest with the authority's key) with a predicate that meets the policy."
)

// TestAttestations: Pods whose images the real cosign CLI signed and attested
// with the KMS key (cosign attest --type vuln / slsaprovenance1), admitted or
// denied through the real API server by policies that require a fresh scan
// without CRITICAL findings, or SLSA v1 provenance from our CI's builder.
// Each subtest pushes its own image; the two policies are shared.
func TestAttestations(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	week := metav1.Duration{Duration: 7 * 24 * time.Hour}
	scan := h.kmsPolicy("e2e-attest-scan", h.repo+"/scanned/*", h.alias, v1alpha1.ModeEnforce)
	scan.Spec.Authorities[0].Key.Attestations = []v1alpha1.AttestationRequirement{{Name: "scan", PredicateType: "vuln", MaxAge: &week, Condition: fixtures.NoCriticalCondition}}
	built := h.kmsPolicy("e2e-attest-built", h.repo+"/built/*", h.alias, v1alpha1.ModeEnforce)
	built.Spec.Authorities[0].Key.Attestations = []v1alpha1.AttestationRequirement{{Name: "provenance", PredicateType: "slsaprovenance1", Condition: fixtures.BuilderCondition}}
	h.policy(t, scan, metav1.ConditionTrue)
	h.policy(t, built, metav1.ConditionTrue)
	pods := h.cs.CoreV1().Pods(h.namespace(t, "", nil))

	// attested pushes an image, signs it and attests it with the KMS key.
	attested := func(t *testing.T, repoTag, predicateType string, predicate []byte) (string, string) {
		t.Helper()
		ref, digest := h.push(t, repoTag)
		h.sign(t, ref, digest)
		repo := ref[:strings.LastIndex(ref, ":")]
		if err := fixtures.CosignAttest(filepath.Join(h.root, "bin"), fixtures.AttestLegacy, "awskms:///"+h.alias, predicateType, predicate, repo+"@"+digest, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		return ref, digest
	}
	// denied is the denial of ref@digest by policy for an attestation that fails.
	denied := func(t *testing.T, ref, digest, policy, requirement, uri, cause string) string {
		return h.denial(t, "pods", fmt.Sprintf(
			`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy %q: authority "ci-kms" (awskms:///%s) is not satisfied: the signature verifies, but required attestation %q (%s) fails: attestation in the %s.att tag %s. %s`,
			ref, digest, policy, h.alias, requirement, uri, strings.Replace(digest, ":", "-", 1), cause, attestHint))
	}
	expectDenied := func(t *testing.T, name, ref, want string) {
		t.Helper()
		_, err := pods.Create(ctx, pod(name, ref), metav1.CreateOptions{})
		expectDenial(t, err, want)
	}

	t.Run("a fresh clean scan is admitted", func(t *testing.T) {
		ref, _ := attested(t, "scanned/clean:v1", "vuln", fixtures.VulnPredicate(time.Now().Add(-time.Hour), 0, "HIGH", "LOW"))
		if _, err := pods.Create(ctx, pod("clean", ref), metav1.CreateOptions{}); err != nil {
			t.Fatalf("denied: %v", err)
		}
	})
	t.Run("a scan with a CRITICAL finding is denied with the condition", func(t *testing.T) {
		ref, digest := attested(t, "scanned/critical:v1", "vuln", fixtures.VulnPredicate(time.Now().Add(-time.Hour), 0, "HIGH", "CRITICAL"))
		expectDenied(t, "critical", ref, denied(t, ref, digest, scan.Name, "scan", vulnURI, "does not meet the condition "+fixtures.NoCriticalCondition))
	})
	t.Run("a stale scan is denied with its age", func(t *testing.T) {
		scanned := time.Now().Add(-8 * 24 * time.Hour).Truncate(time.Second)
		ref, digest := attested(t, "scanned/stale:v1", "vuln", fixtures.VulnPredicate(scanned, 0))
		before := time.Since(scanned)
		_, err := pods.Create(ctx, pod("stale", ref), metav1.CreateOptions{})
		after := time.Since(scanned)
		// The webhook measured the age while it judged: between the two.
		var want []string
		for _, age := range []time.Duration{before, after} {
			want = append(want, denied(t, ref, digest, scan.Name, "scan", vulnURI, fmt.Sprintf("is too old: %s old (predicate.metadata.scanFinishedOn %s), maxAge 168h0m0s",
				age.Truncate(time.Minute), scanned.UTC().Format(time.RFC3339))))
		}
		expectDenial(t, err, want...)
	})
	t.Run("SLSA v1 provenance from our CI's builder is admitted", func(t *testing.T) {
		ref, _ := attested(t, "built/ci:v1", "slsaprovenance1", fixtures.SLSAProvenance(fixtures.CIBuilder, time.Now()))
		if _, err := pods.Create(ctx, pod("ci-built", ref), metav1.CreateOptions{}); err != nil {
			t.Fatalf("denied: %v", err)
		}
	})
	t.Run("SLSA v1 provenance from another builder is denied with the condition", func(t *testing.T) {
		ref, digest := attested(t, "built/elsewhere:v1", "slsaprovenance1", fixtures.SLSAProvenance("https://attacker.example.com/builder", time.Now()))
		expectDenied(t, "elsewhere", ref, denied(t, ref, digest, built.Name, "provenance", slsa1URI, "does not meet the condition "+fixtures.BuilderCondition))
	})
	t.Run("a signed image without its scan is denied: missing", func(t *testing.T) {
		ref, digest := h.push(t, "scanned/unscanned:v1")
		h.sign(t, ref, digest)
		want := h.denial(t, "pods", fmt.Sprintf(
			`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy %q: authority "ci-kms" (awskms:///%s) is not satisfied: the signature verifies, but required attestation "scan" (%s) is missing: no attestation of this type is stored with the image. %s`,
			ref, digest, scan.Name, h.alias, vulnURI, attestHint))
		expectDenied(t, "unscanned", ref, want)
	})
}

// expectDenial fails unless err is a denial reading one of want.
func expectDenial(t *testing.T, err error, want ...string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("got %v, want a denial", err)
	}
	for _, w := range want {
		if err.Error() == w {
			return
		}
	}
	t.Fatalf("got:  %v\nwant: %s", err, strings.Join(want, "\nor:   "))
}
