package cosign

import (
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// Verify looks for the image's cosign signatures and checks each with the
// key until one verifies. The legacy .sig tag is read first (cosign v2's
// default, the most common today: a verified signature there costs one
// manifest and one blob read), then the referrers (bundles and OCI 1.1
// signatures). At most Limits.MaxSignatures signatures are examined.
//
// When signatures were found but none verified and the key is an alias,
// the alias may have moved to the key the pipeline now signs with: the key
// is refreshed (at most once a minute per key, see KMSKey) and the same
// signatures are checked again with the new key, without reading the
// registry again.
func (v *Verifier) Verify(ctx context.Context, img policy.Image) policy.Result {
	res := policy.Result{Image: img.Ref.String(), Authority: v.describe}
	h, err := v1.NewHash(img.Ref.DigestStr())
	if err != nil {
		return withCause(res, policy.ReasonInvalidSignature, "image reference has no usable digest: "+err.Error())
	}
	s, err := newSession(ctx, v.opts.Registry, img)
	if err != nil {
		return withCause(res, policy.ReasonRegistryUnavailable, "registry options: "+err.Error())
	}

	r := run{v: v}
	cands, err := s.legacyCandidates(h)
	if o, ok := r.try(ctx, cands, err, h); ok {
		return v.attested(ctx, s, r.key, h, verified(res, r.key, o))
	}
	if !r.budgetSpent && r.keyErr == nil {
		descs, err := s.referrers()
		r.fail(err)
		for _, d := range signatureReferrers(descs) {
			cands, err := s.referrerCandidates(d)
			if o, ok := r.try(ctx, cands, err, h); ok {
				return v.attested(ctx, s, r.key, h, verified(res, r.key, o))
			}
			if r.budgetSpent || r.keyErr != nil {
				break
			}
		}
	}
	if r.keyErr != nil {
		return withCause(res, policy.ReasonKeyUnavailable, "key unavailable: "+r.keyErr.Error())
	}

	if r.anyInvalid() && v.key.refreshAfterFailure(ctx) {
		if nk, err := v.key.current(); err == nil {
			r.outcomes = nil
			for _, c := range r.found {
				o := v.check(ctx, nk, c, h)
				if o.reason == policy.ReasonVerified {
					return v.attested(ctx, s, nk, h, verified(res, nk, o))
				}
				r.outcomes = append(r.outcomes, o)
			}
		}
	}
	return r.verdict(res, s)
}

// attested checks the required attestations of an image whose signature
// verified (see attest).
func (v *Verifier) attested(ctx context.Context, s *session, key *publicKey, h v1.Hash, res policy.Result) policy.Result {
	if len(v.reqs) == 0 {
		return res
	}
	return v.attest(ctx, s, key, h, res)
}

// run collects what one verification found.
type run struct {
	v *Verifier
	// key is the key to check with, read when the first candidate is
	// found: an image with no signature costs no key (a lazily loaded KMS
	// key is then never fetched). keyErr is why it could not be read.
	key         *publicKey
	keyErr      error
	found       []*candidate
	outcomes    []outcome
	failures    []error
	budgetSpent bool
}

// try checks the candidates one source yielded (and records the error
// that stopped the source, if any), returning the first that verifies.
func (r *run) try(ctx context.Context, cands []*candidate, err error, h v1.Hash) (outcome, bool) {
	if len(cands) > 0 && r.key == nil {
		if r.key, r.keyErr = r.v.key.ensure(ctx); r.keyErr != nil {
			return outcome{}, false
		}
	}
	for _, c := range cands {
		o := r.v.check(ctx, r.key, c, h)
		if o.reason == policy.ReasonVerified {
			return o, true
		}
		r.found = append(r.found, c)
		r.outcomes = append(r.outcomes, o)
	}
	r.fail(err)
	return outcome{}, false
}

func (r *run) fail(err error) {
	if err == nil {
		return
	}
	var le *oci.LimitError
	if errors.As(err, &le) && le.What == budgetLimit {
		r.budgetSpent = true
	}
	r.failures = append(r.failures, err)
}

func (r *run) anyInvalid() bool {
	for _, o := range r.outcomes {
		if o.reason == policy.ReasonInvalidSignature {
			return true
		}
	}
	return false
}

func verified(res policy.Result, key *publicKey, o outcome) policy.Result {
	res.Reason = policy.ReasonVerified
	res.Cause = o.cause
	res.Signer = "public key " + key.short()
	if key.keyARN != "" {
		res.Signer = key.keyARN + " (" + key.short() + ")"
	}
	return res
}

func withCause(res policy.Result, reason policy.Reason, cause string) policy.Result {
	res.Reason = reason
	res.Cause = cause
	return res
}
