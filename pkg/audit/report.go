package audit

import (
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
	Started  time.Time
	Duration time.Duration
	Pods     []PodReport
	// Verifications made by this cycle (verdict-cache misses): a digest
	// already judged is not verified again while its verdict lives.
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
