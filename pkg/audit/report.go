package audit

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/workload"
)

// State is what continuous validation found about one running image.
type State string

// States, from best to worst. Unverifiable is never reported as a
// violation: Signet could not check (a registry or AWS did not answer), which
// says nothing about the image.
const (
	StateVerified     State = "verified"     // every governing policy is satisfied
	StateUngoverned   State = "ungoverned"   // no policy governs it, and the no-match policy admits it
	StateViolation    State = "violation"    // admission would refuse it now (or warn, for Warn-mode policies)
	StateUnverifiable State = "unverifiable" // it could not be checked: a transient registry or AWS failure
	// StateBreakGlass: it fails an Enforce policy and runs because its Pod
	// carries a break-glass reason the policy allows. Reported until the
	// Pod is replaced by one whose images verify.
	StateBreakGlass State = "break-glass"
)

// Report is one evaluation of the running Pods.
type Report struct {
	// Namespace is the namespace audited; empty: every namespace.
	Namespace string
	Started   time.Time
	Duration  time.Duration
	Pods      []PodReport
	// Verifications made while the cycle ran (the verdict cache's verifier
	// calls, admissions' included): a digest already judged is not
	// verified again while its verdict lives.
	Verifications uint64
	// RegistryRequests made while the cycle ran (admissions' included).
	RegistryRequests uint64
}

// PodReport is one Pod's images.
type PodReport struct {
	Namespace, Name string
	UID             types.UID
	// AuditOnly: the namespace is exempt, so admission never judged this
	// Pod; it is reported, not enforced.
	AuditOnly bool
	// BreakGlass is the Pod's break-glass reason (signet.dev/break-glass),
	// "" when it has none (or one admission would refuse).
	BreakGlass string
	Images     []ImageReport
}

// ImageReport is one image of a Pod, judged at the digest it runs.
type ImageReport struct {
	workload.RunningImage
	State    State
	Decision policy.ImageDecision
}

// Violations counts the images in violation.
func (r *Report) Violations() int {
	n := 0
	for _, p := range r.Pods {
		for _, i := range p.Images {
			if i.State == StateViolation {
				n++
			}
		}
	}
	return n
}

// stateOf reads an image's decision: a failure that is only transient
// (every failing policy failed for want of an answer) is unverifiable,
// not a violation.
func stateOf(d policy.ImageDecision) State {
	switch {
	case d.NoMatch && d.Verdict == policy.VerdictAdmitted:
		return StateUngoverned
	case d.NoMatch:
		return StateViolation
	case d.Verdict == policy.VerdictBreakGlass:
		return StateBreakGlass
	case d.Verdict == policy.VerdictAdmitted:
		return StateVerified
	case d.Transient:
		return StateUnverifiable
	}
	for _, p := range d.Policies {
		if !p.Satisfied && !policyTransient(p) {
			return StateViolation
		}
	}
	return StateUnverifiable
}

// policyTransient: the policy failed only because its authorities could not
// get an answer.
func policyTransient(p policy.PolicyResult) bool {
	if p.NotReady != "" || len(p.Authorities) == 0 {
		return false
	}
	for _, a := range p.Authorities {
		if !a.Result.Transient() {
			return false
		}
	}
	return true
}

// policyState is what one governing policy says of an image.
func policyState(p policy.PolicyResult) State {
	switch {
	case p.Satisfied:
		return StateVerified
	case p.BrokenGlass:
		return StateBreakGlass
	case policyTransient(p):
		return StateUnverifiable
	}
	return StateViolation
}

// Note is the one line a user reads about one of the Pod's images: the
// decision admission would give now, which digest was judged when it came
// from the Pod's status, and whether the namespace is exempt or the Pod
// runs by break-glass. Events, `signet audit` and reports all say it.
func (p PodReport) Note(img ImageReport) string {
	msg := img.Decision.Message() + runningNote(img)
	if p.AuditOnly {
		msg = "audit-only (exempt namespace): " + msg
	}
	if img.State == StateBreakGlass {
		msg = fmt.Sprintf("runs by break-glass (reason %q): %s Replace the Pod with one whose images verify.", p.BreakGlass, msg)
	}
	return msg
}

// runningNote says which digest was judged when it came from the status.
func runningNote(img ImageReport) string {
	if !img.FromStatus {
		return ""
	}
	return fmt.Sprintf(" (judged at the digest running, from the Pod's status; the spec names %s)", img.Spec)
}

// Reasons a Finding gives when no authority decided: the image is
// ungoverned, its reference or digest could not be read, or its policy
// is not ready. Otherwise a Finding's reason is its authority's
// (policy.Reason: Verified, NoSignature, Revoked, RegistryUnavailable…).
const (
	ReasonNoMatch          policy.Reason = "NoMatch"
	ReasonPolicyNotReady   policy.Reason = "PolicyNotReady"
	ReasonInvalidReference policy.Reason = "InvalidReference"
	ReasonImageUnreadable  policy.Reason = "ImageUnreadable"
	ReasonTooManyImages    policy.Reason = "TooManyImages"
)

// Finding is what decided an image's state, in one row: the policy, the
// authority and the reason. A verified image names the policy and the
// authority that verified it; a failed one the first policy that failed
// (one that failed for good before one that only lacked an answer) and
// its first authority that failed that way.
type Finding struct {
	Policy    string
	Authority string
	Reason    policy.Reason
}

// Finding reads the image's decision into one row.
func (img ImageReport) Finding() Finding {
	d := img.Decision
	switch {
	case d.NoMatch:
		return Finding{Reason: ReasonNoMatch}
	case len(d.Policies) == 0 && d.Hint == "": // refused as a whole (too many images)
		return Finding{Reason: ReasonTooManyImages}
	case len(d.Policies) == 0:
		return Finding{Reason: ReasonInvalidReference}
	}
	if img.State == StateVerified {
		for _, p := range d.Policies {
			if p.Satisfied {
				return Finding{Policy: p.Policy, Authority: p.SatisfiedBy, Reason: policy.ReasonVerified}
			}
		}
	}
	// The failure that explains the state: a final one for a violation,
	// a transient one for an unverifiable image.
	wantTransient := img.State == StateUnverifiable
	var first *Finding
	for _, p := range d.Policies {
		if p.Satisfied {
			continue
		}
		f := Finding{Policy: p.Policy}
		switch {
		case p.NotReady != "":
			f.Reason = ReasonPolicyNotReady
		case d.Cause != "" && d.Transient:
			f.Reason = policy.ReasonRegistryUnavailable
		case d.Cause != "":
			f.Reason = ReasonImageUnreadable
		}
		if f.Reason != "" {
			if f.Reason.Transient() == wantTransient {
				return f
			}
			if first == nil {
				first = &f
			}
			continue
		}
		for _, a := range p.Authorities {
			if a.Result.Verified() {
				continue
			}
			f := Finding{Policy: p.Policy, Authority: a.Name, Reason: a.Result.Reason}
			if a.Result.Reason.Transient() == wantTransient {
				return f
			}
			if first == nil {
				first = &f
			}
		}
	}
	if first != nil {
		return *first
	}
	return Finding{Policy: d.Policies[0].Policy}
}

// Digest is the digest judged: the one verified, else the one the Pod's
// reference or status names; empty when none is known (a tag no policy
// governs, or one that could not be resolved).
func (img ImageReport) Digest() string {
	if img.Decision.Digest != "" {
		return img.Decision.Digest
	}
	if i := strings.LastIndex(img.Ref, "@"); i >= 0 {
		return img.Ref[i+1:]
	}
	return ""
}
