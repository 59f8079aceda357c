package policy

import (
	"context"
	"reflect"
	"testing"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

func TestBreakGlassReason(t *testing.T) {
	const why = `say why the images must run unverified, e.g. "INC-4711: signing service down, hotfix for checkout"`
	for _, tt := range []struct{ in, want, err string }{
		{in: "  INC-4711: signer down  ", want: "INC-4711: signer down"},
		{in: "0123456789", want: "0123456789"},
		{in: "", err: "break-glass needs a reason: " + why},
		{in: "   ", err: "break-glass needs a reason: " + why},
		{in: "hotfix", err: `break-glass reason "hotfix" is too short (6 characters, at least 10): ` + why},
		{in: "ünïcödé€€", err: `break-glass reason "ünïcödé€€" is too short (9 characters, at least 10): ` + why},
	} {
		got, err := BreakGlassReason(tt.in)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("BreakGlassReason(%q) error\n got: %v\nwant: %s", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("BreakGlassReason(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEvaluateBreakGlass(t *testing.T) {
	allow := func(p *v1alpha1.ClusterImagePolicy) *v1alpha1.ClusterImagePolicy {
		p.Spec.BreakGlass = &v1alpha1.BreakGlass{Allowed: true}
		return p
	}
	prodAllows := allow(cip("prod", v1alpha1.ModeEnforce, []string{reg + "/prod/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign")))
	strict := cip("strict", v1alpha1.ModeEnforce, []string{reg + "/prod/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign"))
	warn := allow(cip("rollout", v1alpha1.ModeWarn, []string{reg + "/**"}, kmsAuth("other", "awskms:///alias/other")))
	brokenAllows := allow(cip("broken", v1alpha1.ModeEnforce, []string{reg + "/prod/**"}, kmsAuth("down", "awskms:///alias/down")))
	const reason = "INC-4711: signer down"
	unsigned := reg + "/prod/app:hotfix" // resolves to dB, which the kms authority has not signed
	at := reg + "/prod/app:hotfix@" + dB + " (spec.containers[0].image)"
	noSig := `no valid signature from authority "ci-kms" (awskms:///alias/cosign): no signature found. ` + hintSign

	tests := []struct {
		name     string
		policies []*v1alpha1.ClusterImagePolicy
		reason   string
		image    string
		verdict  Verdict
		broken   []string
		message  string
		warnings []string
	}{
		{
			name: "admitted by break-glass, with a warning", policies: []*v1alpha1.ClusterImagePolicy{prodAllows}, reason: reason,
			image: unsigned, verdict: VerdictBreakGlass, broken: []string{"prod"},
			message:  `image ` + at + ` admitted by break-glass despite ClusterImagePolicy "prod": ` + noSig,
			warnings: []string{`image ` + at + ` admitted by break-glass despite ClusterImagePolicy "prod": ` + noSig},
		},
		{
			name: "without a reason the policy denies", policies: []*v1alpha1.ClusterImagePolicy{prodAllows},
			image: unsigned, verdict: VerdictDenied,
			message: `image ` + at + ` denied by ClusterImagePolicy "prod": ` + noSig,
		},
		{
			name: "a policy without opt-in ignores the reason and says so", policies: []*v1alpha1.ClusterImagePolicy{strict}, reason: reason,
			image: unsigned, verdict: VerdictDenied,
			message: `image ` + at + ` denied by ClusterImagePolicy "strict": ` + noSig + ` Break-glass does not apply: ClusterImagePolicy "strict" does not allow it (spec.breakGlass.allowed is not true).`,
		},
		{
			name: "every failed policy must allow it", policies: []*v1alpha1.ClusterImagePolicy{prodAllows, strict}, reason: reason,
			image: unsigned, verdict: VerdictDenied, broken: []string{"prod"},
			message: `image ` + at + ` denied by ClusterImagePolicy "strict": ` + noSig + ` Break-glass does not apply: ClusterImagePolicy "strict" does not allow it (spec.breakGlass.allowed is not true).`,
		},
		{
			name: "a satisfied policy needs no break-glass", policies: []*v1alpha1.ClusterImagePolicy{prodAllows, strict}, reason: reason,
			image: reg + "/prod/app@" + dA, verdict: VerdictAdmitted,
			message: `image reg.example.com/prod/app@` + dA + ` (spec.containers[0].image) admitted by ClusterImagePolicy "prod" (authority "ci-kms"), ClusterImagePolicy "strict" (authority "ci-kms")`,
		},
		{
			name: "a policy that is not ready can be broken", policies: []*v1alpha1.ClusterImagePolicy{brokenAllows}, reason: reason,
			image: unsigned, verdict: VerdictBreakGlass, broken: []string{"broken"},
			message:  `image ` + at + ` admitted by break-glass despite ClusterImagePolicy "broken": the policy is not ready: authority "down": operation error KMS: GetPublicKey, connection refused. Fix the policy (kubectl describe clusterimagepolicy broken) or the key it names.`,
			warnings: []string{`image ` + at + ` admitted by break-glass despite ClusterImagePolicy "broken": the policy is not ready: authority "down": operation error KMS: GetPublicKey, connection refused. Fix the policy (kubectl describe clusterimagepolicy broken) or the key it names.`},
		},
		{
			name: "Warn policies only warn, break-glass or not", policies: []*v1alpha1.ClusterImagePolicy{prodAllows, warn}, reason: reason,
			image: unsigned, verdict: VerdictBreakGlass, broken: []string{"prod"},
			message:  `image ` + at + ` admitted by break-glass despite ClusterImagePolicy "prod": ` + noSig + `; would be denied by ClusterImagePolicy "rollout" (Warn mode): no valid signature from authority "other" (awskms:///alias/other): no signature found. ` + hintSign,
			warnings: []string{`image ` + at + ` admitted by break-glass despite ClusterImagePolicy "prod": ` + noSig + `; would be denied by ClusterImagePolicy "rollout" (Warn mode): no valid signature from authority "other" (awskms:///alias/other): no signature found. ` + hintSign},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Engine{Cache: NewVerdictCache(CacheOptions{}), Resolver: mapResolver{unsigned: dB}}
			d := e.Evaluate(context.Background(), compileAll(t, newFixture(), tt.policies...),
				Request{Images: []ImageRef{{Path: "spec.containers[0].image", Ref: tt.image}}, BreakGlass: tt.reason})
			got := d.Images[0]
			if got.Verdict != tt.verdict {
				t.Errorf("verdict %s, want %s", got.Verdict, tt.verdict)
			}
			if !reflect.DeepEqual(got.BrokenGlass(), tt.broken) {
				t.Errorf("BrokenGlass() = %q, want %q", got.BrokenGlass(), tt.broken)
			}
			if msg := got.Message(); msg != tt.message {
				t.Errorf("message\n got: %s\nwant: %s", msg, tt.message)
			}
			if w := d.Warnings(); !reflect.DeepEqual(w, tt.warnings) {
				t.Errorf("warnings\n got: %q\nwant: %q", w, tt.warnings)
			}
			if d.Allowed() != (tt.verdict != VerdictDenied) {
				t.Errorf("Allowed() = %v", d.Allowed())
			}
			if n := len(d.BreakGlass()); n != map[bool]int{true: 1}[tt.verdict == VerdictBreakGlass] {
				t.Errorf("BreakGlass() has %d images", n)
			}
			// Break-glass keeps the digest that was judged, so it is pinned.
			if tt.verdict == VerdictBreakGlass && (got.Digest != dB || !got.Resolved || len(got.Enforcers()) != 1) {
				t.Errorf("digest %q resolved %v enforcers %q: want %s pinned by prod", got.Digest, got.Resolved, got.Enforcers(), dB)
			}
		})
	}
}
