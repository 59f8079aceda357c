package policy

import (
	"context"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// ReasonStaticFail: a static fail authority denies every image its policy
// governs; Cause is the policy's message.
const ReasonStaticFail Reason = "StaticFail"

// StaticVerifier is a static authority: it answers pass or fail for every
// image without reading a signature, so it needs no registry and no AWS.
type StaticVerifier struct {
	Action  v1alpha1.StaticAction
	Message string // the denial users read, for fail
}

// Verify implements Verifier.
func (s StaticVerifier) Verify(_ context.Context, img Image) Result {
	r := Result{Image: img.Ref.String(), Authority: s.Describe()}
	if s.Action == v1alpha1.StaticPass {
		r.Reason, r.Signer = ReasonVerified, "nobody (static pass)"
		return r
	}
	r.Reason, r.Cause = ReasonStaticFail, s.Message
	return r
}

// Identity implements Verifier. The message is part of it: a changed
// message must not be answered from the verdict cache.
func (s StaticVerifier) Identity() string { return "static;" + string(s.Action) + ";" + s.Message }

// Describe implements Verifier.
func (s StaticVerifier) Describe() string { return "static " + string(s.Action) }

// Passes reports whether every authority of the policy is static pass: it
// admits the images it governs with no signature (an allow-list).
func (p *Policy) Passes() bool {
	for _, a := range p.Authorities {
		if s, ok := a.Verifier.(StaticVerifier); !ok || s.Action != v1alpha1.StaticPass {
			return false
		}
	}
	return len(p.Authorities) > 0
}
