package cosign

import (
	"errors"
	"fmt"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// verdict words a verification that found no valid signature. The order
// says which fact matters most:
//
//  1. a limit was exceeded: the registry serves more than Signet reads;
//  2. the registry could not be read (transient, denied): a valid
//     signature may exist where Signet could not look;
//  3. a signature by the key binds another digest (copied from another image);
//  4. signatures exist but none verifies with the key;
//  5. nothing was found (and whether the image itself exists).
func (r *run) verdict(res policy.Result, s *session) policy.Result {
	for _, err := range r.failures {
		var le *oci.LimitError
		if errors.As(err, &le) {
			if le.What == budgetLimit {
				return withCause(res, policy.ReasonLimitExceeded, fmt.Sprintf(
					"more than %d signatures to examine and none of the first %d verifies (Signet's limit on signatures examined per image)", le.Limit, le.Limit))
			}
			what := "the registry"
			var fe *fetchError
			if errors.As(err, &fe) {
				what = fe.what
			}
			return withCause(res, policy.ReasonLimitExceeded, "reading "+what+": "+le.Error())
		}
	}
	if len(r.failures) > 0 {
		for _, err := range r.failures {
			res.RegistryDenied = res.RegistryDenied || oci.ClassifyORAS(err) == oci.FailureDenied
		}
		return withCause(res, policy.ReasonRegistryUnavailable, failureCause(r.failures[0], s))
	}
	for _, reason := range []policy.Reason{policy.ReasonDigestMismatch, policy.ReasonInvalidSignature} {
		for _, o := range r.outcomes {
			if o.reason != reason {
				continue
			}
			if len(r.outcomes) == 1 {
				return withCause(res, reason, o.cause)
			}
			return withCause(res, reason, fmt.Sprintf("%d signatures found, none valid: %s", len(r.outcomes), o.cause))
		}
	}
	if s.imageMissing() {
		return withCause(res, policy.ReasonNoSignature, "image not found: the registry has no manifest "+s.digest.DigestStr())
	}
	return withCause(res, policy.ReasonNoSignature, "no signature found")
}

// failureCause words a registry failure (not a limit) for people.
func failureCause(err error, s *session) string {
	what := "the registry"
	var fe *fetchError
	if errors.As(err, &fe) {
		what = fe.what
		err = fe.err
	}
	return oci.Describe(err, s.digest.RegistryStr(), s.digest.Context().Name(), what)
}
