package policy

import (
	"fmt"
	"strings"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// Verdict is what happens to one image.
type Verdict string

// Verdicts.
const (
	VerdictAdmitted Verdict = "admitted"
	VerdictWarned   Verdict = "warned" // admitted, with a warning
	VerdictDenied   Verdict = "denied"
)

// Decision is the outcome for every image of a request, in request order.
type Decision struct {
	Images []ImageDecision
	// Refused, when set, says why the request was refused as a whole
	// before any image was judged (a limit); Images is then empty.
	Refused string
}

// Allowed reports whether the object may be admitted.
func (d Decision) Allowed() bool {
	if d.Refused != "" {
		return false
	}
	for _, i := range d.Images {
		if i.Verdict == VerdictDenied {
			return false
		}
	}
	return true
}

// Denials are the one-line messages of denied images, or the refusal.
func (d Decision) Denials() []string {
	if d.Refused != "" {
		return []string{d.Refused}
	}
	return d.messages(VerdictDenied)
}

// Busy is the cause of the first verification that got no slot in time
// (ReasonBusy): Signet's failure, not the image's. Empty when none.
func (d Decision) Busy() string {
	for _, i := range d.Images {
		for _, p := range i.Policies {
			for _, a := range p.Authorities {
				if !p.Satisfied && a.Result.Reason == ReasonBusy {
					return a.Result.Cause
				}
			}
		}
	}
	return ""
}

// Warnings are what kubectl shows beside the decision: the one-line
// messages of images admitted by break-glass and of admitted-with-warning
// images, then every warning an authority attached to a verification that
// admitted an image (a revocation check skipped in BestEffort mode).
func (d Decision) Warnings() []string {
	out := append(d.messages(VerdictBreakGlass), d.messages(VerdictWarned)...)
	for _, i := range d.Images {
		out = append(out, i.VerifierWarnings()...)
	}
	return out
}

// VerifierWarnings are the warnings of the authorities that satisfied the
// image's policies, each naming the image, the policy and the authority.
func (i ImageDecision) VerifierWarnings() []string {
	var out []string
	for _, p := range i.Policies {
		for _, a := range p.Authorities {
			if !a.Result.Verified() {
				continue
			}
			for _, w := range a.Result.Warnings {
				out = append(out, fmt.Sprintf("image %s (%s) admitted by ClusterImagePolicy %q (authority %q) with a warning: %s", i.Image, i.Path, p.Policy, a.Name, w))
			}
		}
	}
	return out
}

func (d Decision) messages(v Verdict) []string {
	var out []string
	for _, i := range d.Images {
		if i.Verdict == v {
			out = append(out, i.Message())
		}
	}
	return out
}

// ImageDecision is the outcome for one image.
type ImageDecision struct {
	Path  string // e.g. spec.containers[0].image
	Image string // as written
	// Digest is the manifest digest that was verified ("sha256:…"); empty
	// when none was (no policy governs the image, or resolution failed).
	Digest string
	// Resolved is true when Image named a tag that was resolved to Digest.
	Resolved bool
	Verdict  Verdict
	// NoMatch: no policy governs the image; NoMatchPolicy decided.
	NoMatch bool
	// Policies are the governing policies' results.
	Policies []PolicyResult
	// Cause and Hint explain a failure that happened before any policy
	// could be checked (bad reference, tag resolution).
	Cause, Hint string
	// Transient: the failure was infrastructure, not the image.
	Transient bool
}

// Enforcers are the Enforce-mode policies governing the image, when every
// one of them is satisfied; nil when there is none or one failed. Warn-mode
// failures do not count: they never stop an image, so they must never stop
// it from being pinned either.
func (i ImageDecision) Enforcers() []string {
	var names []string
	for _, p := range i.Policies {
		if p.Mode != v1alpha1.ModeEnforce {
			continue
		}
		if !p.Satisfied && !p.BrokenGlass {
			return nil
		}
		names = append(names, p.Policy)
	}
	return names
}

// PolicyResult is one governing policy's outcome for one image.
type PolicyResult struct {
	Policy      string
	Mode        v1alpha1.PolicyMode
	Satisfied   bool
	SatisfiedBy string // the authority that verified it
	NotReady    string // why the policy could not be enforced
	Authorities []AuthorityResult
	// BrokenGlass: the policy failed and allows break-glass, and the
	// request gave a reason: it does not stop the image.
	BrokenGlass bool
	// BreakGlassRefused: the policy failed and the request gave a
	// break-glass reason, but the policy does not allow break-glass.
	BreakGlassRefused bool
}

// AuthorityResult is one authority's verification.
type AuthorityResult struct {
	Name     string
	Describe string
	Result   Result
	Cache    Outcome
}

// Hints: what a user can do about a denial.
const (
	hintSign       = "Sign this digest in your pipeline with one of the policy's authorities."
	hintTransient  = "This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS."
	hintNotReady   = "Fix the policy (kubectl describe clusterimagepolicy %s) or the key it names."
	hintNoMatch    = "No ClusterImagePolicy governs this image and unmatched images are %s: add a policy whose images cover it."
	hintRevoked    = "The signature was revoked: deploy an image signed by a signing job that was not revoked."
	hintExpired    = "The signature or its certificate expired: sign the image again."
	hintLimit      = "The registry served more than Signet reads for one image: check the image's signatures."
	hintAttest     = "Attest this digest in your pipeline (cosign attest with the authority's key) with a predicate that meets the policy."
	hintBadRef     = "Fix the image reference."
	hintUnreadable = "Check that the image exists and that the Pod's imagePullSecrets (or Signet's own registry credentials) can read it."
)

// Message is the one line a user reads about the image: which image (and
// where), which policy and authorities, why, and what to do.
func (i ImageDecision) Message() string {
	where := i.Image
	if i.Digest != "" && !strings.Contains(i.Image, "@") {
		where += "@" + i.Digest
	}
	if i.Path != "" {
		where += " (" + i.Path + ")"
	}
	switch {
	case i.Verdict == VerdictAdmitted && !i.NoMatch:
		var by []string
		for _, p := range i.Policies {
			by = append(by, fmt.Sprintf("ClusterImagePolicy %q (authority %q)", p.Policy, p.SatisfiedBy))
		}
		return fmt.Sprintf("image %s admitted by %s", where, strings.Join(by, ", "))
	case i.NoMatch:
		mode := map[Verdict]string{VerdictAdmitted: "allowed", VerdictWarned: "allowed with a warning", VerdictDenied: "denied"}[i.Verdict]
		return fmt.Sprintf("image %s is not governed by any ClusterImagePolicy. %s", where, fmt.Sprintf(hintNoMatch, mode))
	case i.Cause != "":
		return fmt.Sprintf("image %s %s: %s. %s", where, verb(i.Verdict), clause(i.Cause), i.Hint)
	}
	var parts []string
	for _, p := range i.Policies {
		if p.Satisfied || p.BrokenGlass && i.Verdict == VerdictDenied {
			// A denial names what denied it: the policies break-glass
			// overrode are named once nothing else stops the image.
			continue
		}
		parts = append(parts, p.message(verb(i.Verdict)))
	}
	return fmt.Sprintf("image %s %s", where, strings.Join(parts, "; "))
}

func verb(v Verdict) string {
	switch v {
	case VerdictWarned:
		return "would be denied (Warn mode)"
	case VerdictBreakGlass:
		return "admitted by break-glass"
	}
	return "denied"
}

// breakGlassRefused ends the denial by a policy that does not allow
// break-glass, when the request asked for it.
const breakGlassRefused = " Break-glass does not apply: ClusterImagePolicy %q does not allow it (spec.breakGlass.allowed is not true)."

// message: `by ClusterImagePolicy "prod": no signature from authority
// "ci-kms" (awskms:///alias/cosign): no signature found. Sign …`
func (p PolicyResult) message(verb string) string {
	msg := p.failure(verb)
	if p.BreakGlassRefused {
		msg += fmt.Sprintf(breakGlassRefused, p.Policy)
	}
	return msg
}

func (p PolicyResult) failure(verb string) string {
	head := fmt.Sprintf("%s by ClusterImagePolicy %q", verb, p.Policy)
	switch {
	case p.BrokenGlass:
		head = fmt.Sprintf("admitted by break-glass despite ClusterImagePolicy %q", p.Policy)
	case verb != "denied" && p.Mode == v1alpha1.ModeWarn:
		head = fmt.Sprintf("would be denied by ClusterImagePolicy %q (Warn mode)", p.Policy)
	}
	if p.NotReady != "" {
		return fmt.Sprintf("%s: the policy is not ready: %s. %s", head, clause(p.NotReady), fmt.Sprintf(hintNotReady, p.Policy))
	}
	for _, a := range p.Authorities {
		if a.Result.Reason == ReasonStaticFail {
			// A deny-list: the policy's own words say what to do instead.
			return fmt.Sprintf("%s: %s", head, strings.TrimSpace(a.Result.Cause))
		}
	}
	// Group authorities by cause so that the common case reads as one clause.
	var names []string
	causes := map[string][]string{}
	var order []string
	hint := hintSign
	for _, a := range p.Authorities {
		name := fmt.Sprintf("%q (%s)", a.Name, a.Describe)
		names = append(names, name)
		if _, ok := causes[a.Result.Cause]; !ok {
			order = append(order, a.Result.Cause)
		}
		causes[a.Result.Cause] = append(causes[a.Result.Cause], name)
		hint = worseHint(hint, a.Result.Reason)
	}
	if len(order) == 1 {
		if hint == hintAttest {
			return fmt.Sprintf("%s: authority %s is not satisfied: %s. %s", head, strings.Join(names, " or "), clause(order[0]), hint)
		}
		return fmt.Sprintf("%s: no valid signature from authority %s: %s. %s", head, strings.Join(names, " or "), clause(order[0]), hint)
	}
	var clauses []string
	for _, c := range order {
		clauses = append(clauses, fmt.Sprintf("authority %s: %s", strings.Join(causes[c], " or "), clause(c)))
	}
	return fmt.Sprintf("%s: no valid signature (%s). %s", head, strings.Join(clauses, "; "), hint)
}

// worseHint picks the hint for the most actionable reason: a transient
// failure means the signature may be fine, so retrying comes first.
func worseHint(current string, r Reason) string {
	switch {
	case r.Transient():
		return hintTransient
	case current == hintTransient:
		return current
	case r == ReasonRevoked:
		return hintRevoked
	case r == ReasonExpired && current == hintSign:
		return hintExpired
	case r == ReasonLimitExceeded && current == hintSign:
		return hintLimit
	case r == ReasonAttestationUnsatisfied && current == hintSign:
		return hintAttest
	}
	return current
}

// TransientFailure reports whether any denial of the image was infrastructure.
func (i ImageDecision) TransientFailure() bool {
	if i.Transient {
		return true
	}
	for _, p := range i.Policies {
		for _, a := range p.Authorities {
			if !p.Satisfied && a.Result.Transient() {
				return true
			}
		}
	}
	return false
}

// clause trims what would double the full stop a message puts after a
// cause taken from elsewhere (AWS errors end with one).
func clause(s string) string { return strings.TrimRight(s, ". ") }
