package cosign

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
)

// Annotations cosign attest writes with an attestation: on the .att tag's
// layer, and on the bundle referrer's manifest (which the referrers listing
// repeats). Unsigned: they only let Signet skip reading attestations of
// types no requirement asks for; what counts is the signed statement.
const (
	legacyPredicateTypeAnnotation = "predicateType"
	bundlePredicateTypeAnnotation = "dev.sigstore.bundle.predicateType"
)

// attestBudgetLimit is the LimitError.What of the attestation budget.
const attestBudgetLimit = "attestations examined per image"

// attCandidate is one attestation found for the image, read, not verified.
type attCandidate struct {
	where string
	// One of legacy (a DSSE envelope from the .att tag) and bundle is set.
	legacy oci.Signature
	bundle *sgbundle.Bundle
	// invalid says why the attestation could not be parsed.
	invalid string
}

// attTagName is the tag cosign v2 stores attestations under by default.
func attTagName(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + ".att" }

// wanted reports whether an attestation annotated with predicate type pt
// may satisfy a requirement: unannotated ones are read.
func wanted(reqs []requirement, pt string) bool {
	if pt == "" {
		return true
	}
	for _, r := range reqs {
		if r.uri == pt {
			return true
		}
	}
	return false
}

// attestationCandidates reads every attestation of a wanted type stored
// with the image: the sha256-<hex>.att tag's DSSE layers (newest first),
// then the Sigstore bundle referrers that are not signatures. It stops at
// the first registry failure or limit, returning what it read.
func (s *session) attestationCandidates(h v1.Hash, reqs []requirement) ([]*attCandidate, error) {
	s.budget, s.budgetWhat, s.payloadWhat = s.limits.MaxSignatures, attestBudgetLimit, "attestation size"
	var out []*attCandidate
	tag := attTagName(h)
	where := "the " + tag + " tag"
	m, err := s.manifest(s.digest.Context().Tag(tag), where)
	if err != nil {
		return out, err
	}
	if m != nil {
		for i := len(m.Layers) - 1; i >= 0; i-- {
			desc := m.Layers[i]
			if desc.MediaType != ctypes.DssePayloadType || !wanted(reqs, desc.Annotations[legacyPredicateTypeAnnotation]) {
				continue
			}
			if err := s.take(); err != nil {
				return out, err
			}
			envelope, err := s.payload(desc, where)
			if err != nil {
				return out, err
			}
			att, err := static.NewAttestation(envelope)
			if err != nil {
				return out, err
			}
			out = append(out, &attCandidate{where: where, legacy: att})
		}
	}
	descs, err := s.referrers()
	if err != nil {
		return out, err
	}
	for _, d := range signatureReferrers(descs) {
		pt := d.Annotations[bundlePredicateTypeAnnotation]
		if d.ArtifactType == artifactTypeSig || pt == ctypes.CosignSignPredicateType || !wanted(reqs, pt) {
			continue
		}
		cands, err := s.referrerCandidates(d)
		for _, c := range cands {
			switch {
			case c.bundle != nil:
				out = append(out, &attCandidate{where: c.where, bundle: c.bundle})
			case c.invalid != "":
				out = append(out, &attCandidate{where: c.where, invalid: c.invalid})
			}
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
