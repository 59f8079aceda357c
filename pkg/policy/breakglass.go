package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// VerdictBreakGlass: admitted although an Enforce policy failed, because
// the request gave a break-glass reason and every failed Enforce policy
// allows break-glass. The image is admitted, pinned and recorded.
const VerdictBreakGlass Verdict = "break-glass"

// BreakGlassReason checks a break-glass reason (the signet.dev/break-glass
// annotation, the CLI's --break-glass flag) and returns it trimmed. The
// webhook and the CLI refuse the same reasons with the same words.
func BreakGlassReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	const why = `say why the images must run unverified, e.g. "INC-4711: signing service down, hotfix for checkout"`
	switch n := utf8.RuneCountInString(reason); {
	case n == 0:
		return "", fmt.Errorf("break-glass needs a reason: %s", why)
	case n < v1alpha1.MinBreakGlassReason:
		return "", fmt.Errorf("break-glass reason %q is too short (%d characters, at least %d): %s", reason, n, v1alpha1.MinBreakGlassReason, why)
	}
	return reason, nil
}

// applyBreakGlass marks the failed Enforce policies of one image: broken
// (admitted by break-glass) when the policy allows it, refused when it does
// not. reason is "" when the request gave none. policies are the governing
// policies, in the order of results.
func applyBreakGlass(results []PolicyResult, policies []*Policy, reason string) {
	if reason == "" {
		return
	}
	for i := range results {
		r := &results[i]
		if r.Satisfied || r.Mode != v1alpha1.ModeEnforce {
			continue
		}
		if policies[i].BreakGlass {
			r.BrokenGlass = true
		} else {
			r.BreakGlassRefused = true
		}
	}
}

// withBreakGlass turns an admitted or warned verdict into VerdictBreakGlass
// when a policy was broken for it.
func withBreakGlass(v Verdict, results []PolicyResult) Verdict {
	if v == VerdictDenied {
		return v
	}
	for _, r := range results {
		if r.BrokenGlass {
			return VerdictBreakGlass
		}
	}
	return v
}

// BrokenGlass are the policies break-glass was used against for the
// image, in order.
func (i ImageDecision) BrokenGlass() []string {
	var names []string
	for _, p := range i.Policies {
		if p.BrokenGlass {
			names = append(names, p.Policy)
		}
	}
	return names
}

// BreakGlass are the images of an admitted decision that only break-glass
// admitted; nil when the decision is a denial (nothing was admitted).
func (d Decision) BreakGlass() []ImageDecision {
	if !d.Allowed() {
		return nil
	}
	var out []ImageDecision
	for _, i := range d.Images {
		if i.Verdict == VerdictBreakGlass {
			out = append(out, i)
		}
	}
	return out
}
