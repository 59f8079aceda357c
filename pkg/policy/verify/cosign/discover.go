package cosign

import (
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
)

// Media and artifact types cosign writes.
const (
	// artifactTypeSig marks the OCI 1.1 referrer form of simple-signing
	// signatures (cosign sign --registry-referrers-mode=oci-1-1).
	artifactTypeSig = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// bundleMediaTypePrefix starts every Sigstore bundle media type
	// (application/vnd.dev.sigstore.bundle.v0.3+json and later).
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// createdAnnotation orders referrers newest first when present.
	createdAnnotation = "org.opencontainers.image.created"
)

// ambiguousArtifactTypes are artifact types a referrers listing may show
// for a cosign signature: registries that derive the type from the config
// media type (go-containerregistry's registry) show a bundle's empty config.
var ambiguousArtifactTypes = []string{"", "application/vnd.oci.empty.v1+json", "application/vnd.oci.image.config.v1+json"}

// candidate is one signature found for the image, read and parsed, not yet
// verified.
type candidate struct {
	// where names the place it was found, for causes:
	// "the sha256-….sig tag", "referrer sha256:…".
	where string
	// One of legacy (a simple-signing signature), bundle and invalid is set.
	legacy oci.Signature
	bundle *sgbundle.Bundle
	// invalid says why the signature could not even be parsed.
	invalid string
}

// sigTagName is the tag cosign (v2 default) stores signatures under.
func sigTagName(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + ".sig" }

// legacyCandidates reads the sha256-<hex>.sig tag: an image manifest with
// one simple-signing layer per signature, newest last (so examined first).
// A missing tag is no candidates.
func (s *session) legacyCandidates(h v1.Hash) ([]*candidate, error) {
	tag := sigTagName(h)
	where := "the " + tag + " tag"
	m, err := s.manifest(s.digest.Context().Tag(tag), where)
	if err != nil || m == nil {
		return nil, err
	}
	return s.simpleSigningCandidates(m, where, false)
}

// simpleSigningCandidates reads the simple-signing layers of m, newest
// first. covered says one unit of budget was already spent for m.
func (s *session) simpleSigningCandidates(m *v1.Manifest, where string, covered bool) ([]*candidate, error) {
	var out []*candidate
	for i := len(m.Layers) - 1; i >= 0; i-- {
		desc := m.Layers[i]
		if desc.MediaType != ctypes.SimpleSigningMediaType {
			continue
		}
		if covered {
			covered = false
		} else if err := s.take(); err != nil {
			return out, err
		}
		payload, err := s.payload(desc, where)
		if err != nil {
			return out, err
		}
		// The signature is the layer's annotation. static.NewSignature
		// carries no certificate: Signet verifies with the authority's key
		// only.
		sig, err := static.NewSignature(payload, desc.Annotations[static.SignatureAnnotationKey])
		if err != nil {
			return out, err
		}
		out = append(out, &candidate{where: where, legacy: sig})
	}
	return out, nil
}

// signatureReferrers filters and orders the referrers listing: cosign's
// bundle and simple-signing referrers, plus referrers whose type the
// registry did not tell; newest first when the listing says.
func signatureReferrers(descs []v1.Descriptor) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range descs {
		if strings.HasPrefix(d.ArtifactType, bundleMediaTypePrefix) || d.ArtifactType == artifactTypeSig ||
			slices.Contains(ambiguousArtifactTypes, d.ArtifactType) {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(a, b v1.Descriptor) int {
		return strings.Compare(b.Annotations[createdAnnotation], a.Annotations[createdAnnotation])
	})
	return out
}

// referrerCandidates reads one referrer manifest: a Sigstore bundle (one
// bundle layer) or simple-signing signatures in OCI 1.1 form. Anything
// else yields nothing.
func (s *session) referrerCandidates(desc v1.Descriptor) ([]*candidate, error) {
	if err := s.take(); err != nil {
		return nil, err
	}
	where := "referrer " + desc.Digest.String()
	m, err := s.manifest(s.digest.Context().Digest(desc.Digest.String()), where)
	if err != nil || m == nil {
		return nil, err
	}
	if len(m.Layers) == 1 && strings.HasPrefix(string(m.Layers[0].MediaType), bundleMediaTypePrefix) {
		payload, err := s.payload(m.Layers[0], where)
		if err != nil {
			return nil, err
		}
		b := &sgbundle.Bundle{}
		if err := b.UnmarshalJSON(payload); err != nil {
			// An unreadable bundle is a finding about this candidate, not a
			// failure to look: it is reported, and the lookup goes on.
			return []*candidate{{where: where, invalid: "bundle in " + where + " is not a valid Sigstore bundle"}}, nil //nolint:nilerr // see above
		}
		if !b.MinVersion("v0.3") {
			return []*candidate{{where: where, invalid: "bundle in " + where + " is older than v0.3"}}, nil
		}
		return []*candidate{{where: where, bundle: b}}, nil
	}
	return s.simpleSigningCandidates(m, where, true)
}
