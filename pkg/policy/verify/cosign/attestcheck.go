package cosign

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	intoto "github.com/in-toto/in-toto-golang/in_toto"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/sigstore-go/pkg/verify"

	soci "github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// futureSkew is how far in the future an attestation's time may be (clock
// skew between the pipeline and Signet) before it is refused.
const futureSkew = 5 * time.Minute

// stage orders how far an attestation got: a requirement that fails is
// worded by the attestation that got furthest.
type stage int

const (
	stageUnsigned    stage = iota + 1 // not signed by the key
	stageMalformed                    // signed, but not an in-toto statement Signet can read
	stageOtherDigest                  // signed, for another image
	stageAge                          // bound to the image, too old (or no time to tell)
	stageCondition                    // young enough, condition false or failed
	stageSatisfied
)

// finding is what checking one candidate with the key found, before any
// requirement is applied.
type finding struct {
	where         string
	digest        string // of the statement, "sha256:…"; empty when there is none
	stage         stage  // stageUnsigned, stageMalformed, stageOtherDigest or stageSatisfied (bound to the image)
	cause         string
	predicateType string         // the statement's; unverified when stage is stageUnsigned
	predicate     any            // decoded predicate
	statement     map[string]any // the statement without its predicate
}

// oneAttestation is the oci.Signatures cosign.VerifyImageAttestation takes,
// holding one attestation (it only calls Get), so that each is worded.
type oneAttestation struct {
	v1.Image
	att oci.Signature
}

func (o oneAttestation) Get() ([]oci.Signature, error) { return []oci.Signature{o.att}, nil }

// checkAttestation verifies one candidate's signature with key and its
// binding to h, with cosign's functions: cosign.VerifyImageAttestation
// (DSSE signature, then IntotoSubjectClaimVerifier: a subject's sha256 is
// h) for the .att tag, cosign.VerifyNewBundle (sigstore-go: the DSSE
// envelope's signature and the statement's subject) for bundles.
func (v *Verifier) checkAttestation(ctx context.Context, key *publicKey, c *attCandidate, h v1.Hash) finding {
	f := finding{where: c.where}
	if c.invalid != "" {
		return f.with(stageUnsigned, c.invalid)
	}
	var raw []byte
	var sigErr error
	bound := true
	co := v.checkOpts(key)
	if c.legacy != nil {
		envelope, err := c.legacy.Payload()
		if err != nil {
			return f.with(stageMalformed, "attestation in "+c.where+" cannot be read: "+err.Error())
		}
		var env struct {
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal(envelope, &env); err != nil {
			return f.with(stageUnsigned, "attestation in "+c.where+" is not a DSSE envelope")
		}
		raw, _ = base64.StdEncoding.DecodeString(env.Payload)
		var claimErr error
		co.ClaimVerifier = func(sig oci.Signature, d v1.Hash, ann map[string]any) error {
			claimErr = cosign.IntotoSubjectClaimVerifier(sig, d, ann)
			return claimErr
		}
		_, _, err = cosign.VerifyImageAttestation(ctx, oneAttestation{att: c.legacy}, h, co)
		switch {
		case err != nil && claimErr != nil:
			bound = false
		case err != nil:
			sigErr = err
		}
	} else {
		env := c.bundle.GetDsseEnvelope()
		if env == nil {
			return f.with(stageUnsigned, "bundle in "+c.where+" holds no DSSE envelope")
		}
		raw = env.GetPayload()
		digest, err := hex.DecodeString(h.Hex)
		if err != nil {
			return f.with(stageMalformed, "image digest is not hex")
		}
		if _, err := cosign.VerifyNewBundle(ctx, co, verify.WithArtifactDigest(h.Algorithm, digest), c.bundle); err != nil {
			if _, err2 := cosign.VerifyNewBundle(ctx, co, verify.WithoutArtifactUnsafe(), c.bundle); err2 == nil {
				bound = false
			} else {
				sigErr = err
			}
		}
	}

	if len(raw) > 0 {
		sum := sha256.Sum256(raw)
		f.digest = "sha256:" + hex.EncodeToString(sum[:])
	}
	st := map[string]any{}
	stErr := json.Unmarshal(raw, &st)
	if stErr == nil {
		f.predicateType, _ = st["predicateType"].(string)
	}
	if sigErr != nil {
		what := "attestation"
		if f.predicateType != "" {
			what = "attestation of type " + f.predicateType
		}
		return f.with(stageUnsigned, what+" in "+c.where+" is not signed by the key")
	}
	if stErr != nil {
		return f.with(stageMalformed, "attestation in "+c.where+" is not JSON: "+stErr.Error())
	}
	if !bound {
		return f.with(stageOtherDigest, "attestation in "+c.where+" was made for "+subjects(raw, h.Algorithm))
	}
	if _, ok := st["predicate"]; !ok {
		return f.with(stageMalformed, "attestation in "+c.where+" has no predicate")
	}
	f.predicate = st["predicate"]
	delete(st, "predicate")
	f.statement = st
	f.stage = stageSatisfied
	return f
}

func (f finding) with(s stage, cause string) finding {
	f.stage, f.cause = s, cause
	return f
}

// subjects words the digests a statement names, for a replayed attestation.
func subjects(raw []byte, alg string) string {
	var st intoto.Statement
	if json.Unmarshal(raw, &st) != nil {
		return "another image"
	}
	var ds []string
	for _, s := range st.Subject {
		if d := s.Digest[alg]; d != "" {
			ds = append(ds, alg+":"+d)
		}
	}
	if len(ds) == 0 {
		return "no " + alg + " subject"
	}
	return strings.Join(ds, ", ")
}

// judge applies one requirement to one finding of its type. It returns the
// stage reached, the cause, and, when satisfied with a maxAge, when the
// attestation stops being young enough.
func (r requirement) judge(ctx context.Context, f finding, now time.Time) (stage, string, time.Time) {
	if f.stage != stageSatisfied {
		return f.stage, f.cause, time.Time{}
	}
	var validUntil time.Time
	if r.MaxAge > 0 {
		field := ageFields[r.uri]
		if field == nil {
			return stageAge, fmt.Sprintf("attestation in %s records no time Signet measures its age by (predicate type %s), so it cannot meet maxAge %s", f.where, r.uri, r.MaxAge), time.Time{}
		}
		path := strings.Join(field, ".")
		s, _ := lookup(f.predicate, field).(string)
		if s == "" {
			return stageAge, fmt.Sprintf("attestation in %s has no predicate.%s to measure its age by", f.where, path), time.Time{}
		}
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return stageAge, fmt.Sprintf("attestation in %s has predicate.%s %q, not an RFC 3339 time", f.where, path, s), time.Time{}
		}
		age := now.Sub(at)
		switch {
		case age < -futureSkew:
			return stageAge, fmt.Sprintf("attestation in %s is dated in the future (predicate.%s %s)", f.where, path, s), time.Time{}
		case age > r.MaxAge:
			return stageAge, fmt.Sprintf("attestation in %s is too old: %s old (predicate.%s %s), maxAge %s", f.where, age.Truncate(time.Minute), path, s, r.MaxAge), time.Time{}
		}
		validUntil = at.Add(r.MaxAge)
	}
	if r.cond != nil {
		ok, err := r.cond.eval(ctx, f.predicate, f.statement)
		switch {
		case err != nil:
			return stageCondition, fmt.Sprintf("attestation in %s: condition %s failed: %v", f.where, r.Condition, err), time.Time{}
		case !ok:
			return stageCondition, fmt.Sprintf("attestation in %s does not meet the condition %s", f.where, r.Condition), time.Time{}
		}
	}
	return stageSatisfied, "satisfied", validUntil
}

// lookup follows a field path through decoded JSON.
func lookup(v any, path []string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// attest checks every required attestation of an image whose signature
// verified with key. res is the verified result; it is returned with
// ValidUntil set when a maxAge bounds it, or turned into the failure.
func (v *Verifier) attest(ctx context.Context, s *session, key *publicKey, h v1.Hash, res policy.Result) policy.Result {
	cands, fetchErr := s.attestationCandidates(h, v.reqs)
	findings := make([]finding, 0, len(cands))
	for _, c := range cands {
		findings = append(findings, v.checkAttestation(ctx, key, c, h))
	}
	now := v.now()
	var failed *policy.AttestationResult
	for _, r := range v.reqs {
		ar := policy.AttestationResult{Name: r.Name, PredicateType: r.uri}
		best, bestCause := stage(0), ""
		var until time.Time
		for _, f := range findings {
			if f.predicateType != r.uri && (f.predicateType != "" || f.stage > stageUnsigned) {
				continue
			}
			st, cause, vu := r.judge(ctx, f, now)
			ar.Found = append(ar.Found, policy.AttestationFound{Where: f.where, Statement: f.digest, Satisfied: st == stageSatisfied, Cause: cause})
			if st == stageSatisfied {
				ar.Satisfied = true
				if until.IsZero() || vu.After(until) || vu.IsZero() {
					until = vu
				}
				if vu.IsZero() {
					break // no maxAge: nothing younger is better
				}
				continue
			}
			if st > best {
				best, bestCause = st, cause
			}
		}
		switch {
		case ar.Satisfied:
			ar.Cause = "satisfied"
			if !until.IsZero() && (res.ValidUntil.IsZero() || until.Before(res.ValidUntil)) {
				res.ValidUntil = until
			}
		case best == 0:
			ar.Cause = "missing: no attestation of this type is stored with the image"
		case len(ar.Found) > 1:
			ar.Cause = fmt.Sprintf("%d attestations of this type found, none satisfies it; the closest: %s", len(ar.Found), bestCause)
		default:
			ar.Cause = bestCause
		}
		res.Attestations = append(res.Attestations, ar)
		if !ar.Satisfied && failed == nil {
			failed = &res.Attestations[len(res.Attestations)-1]
		}
	}
	if failed == nil {
		res.Cause += "; " + attestedCause(res.Attestations)
		return res
	}
	res.Signer, res.ValidUntil = "", time.Time{}
	if fetchErr != nil {
		// The missing attestation may be where Signet could not look.
		var le *soci.LimitError
		if errors.As(fetchErr, &le) {
			if le.What == attestBudgetLimit {
				return withCause(res, policy.ReasonLimitExceeded, fmt.Sprintf(
					"more than %d attestations to examine and none of the first %d satisfies attestation %q (Signet's limit on attestations examined per image)", le.Limit, le.Limit, failed.Name))
			}
			what := "the registry"
			var fe *fetchError
			if errors.As(fetchErr, &fe) {
				what = fe.what
			}
			return withCause(res, policy.ReasonLimitExceeded, "reading "+what+": "+le.Error())
		}
		return withCause(res, policy.ReasonRegistryUnavailable, failureCause(fetchErr, s))
	}
	detail := "fails: " + failed.Cause
	if strings.HasPrefix(failed.Cause, "missing: ") {
		detail = "is " + failed.Cause
	}
	return withCause(res, policy.ReasonAttestationUnsatisfied, fmt.Sprintf("the signature verifies, but required attestation %q (%s) %s", failed.Name, failed.PredicateType, detail))
}

// attestedCause sums up the satisfied attestations for a verified result.
func attestedCause(ars []policy.AttestationResult) string {
	names := make([]string, 0, len(ars))
	for _, a := range ars {
		names = append(names, fmt.Sprintf("%q", a.Name))
	}
	return "attestations " + strings.Join(names, ", ") + " satisfied"
}
