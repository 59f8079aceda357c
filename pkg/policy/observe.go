package policy

import (
	"strings"
	"time"
)

// Observer is told what the engine did, for metrics. The webhook's metrics
// package implements it; pkg/policy itself knows no metrics library.
// Implementations must be fast and safe for concurrent use.
type Observer interface {
	// ObserveVerification is called once per authority verification with
	// the verifier's scheme (see Scheme), how the verdict cache answered,
	// and how long the caller waited for the result.
	ObserveVerification(scheme string, cache Outcome, took time.Duration)
}

// SchemeUnknown names verifiers whose Identity does not start with a scheme.
const SchemeUnknown = "unknown"

// Scheme is the signature scheme of v ("cosign", "awssigner"): the part of
// its Identity before the first semicolon, which every verifier in
// pkg/policy/verify starts with.
func Scheme(v Verifier) string {
	scheme, _, ok := strings.Cut(v.Identity(), ";")
	if !ok || scheme == "" {
		return SchemeUnknown
	}
	return scheme
}
