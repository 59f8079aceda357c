package awssigner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/notaryproject/notation-go/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	orasremote "oras.land/oras-go/v2/registry/remote"

	"github.com/signet-dev/signet/internal/oci"
)

// repository is the notation-go registry.Repository notation.Verify reads
// signatures through: notation-go's own, over an oras-go repository on
// Signet's registry layer, with Signet's discovery (referrers API, then
// the tag schema), Signet's payload limit, and every registry failure
// recorded in the session (notation-go keeps only their text).
type repository struct {
	registry.Repository
	remote *orasremote.Repository
	limits oci.Limits
	s      *session
}

func newRepository(remote *orasremote.Repository, limits oci.Limits, s *session) *repository {
	return &repository{Repository: registry.NewRepository(remote), remote: remote, limits: limits, s: s}
}

func (r *repository) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	desc, err := r.Repository.Resolve(ctx, reference)
	if err != nil {
		r.s.fail("the image manifest", err)
		return desc, err
	}
	r.s.resolved = desc
	return desc, nil
}

func (r *repository) ListSignatures(ctx context.Context, desc ocispec.Descriptor, fn func([]ocispec.Descriptor) error) error {
	var fnErr error
	err := oci.Referrers(ctx, r.remote, desc, registry.ArtifactTypeNotation, r.limits, func(descs []ocispec.Descriptor) error {
		fnErr = fn(descs)
		return fnErr
	})
	if err != nil && !errors.Is(err, fnErr) {
		r.s.fail("the image's referrers", err)
	}
	return err
}

// FetchSignatureBlob reads a signature envelope. For the image manifests
// Notation pushes, the envelope's size is checked against Signet's payload
// limit before it is downloaded.
func (r *repository) FetchSignatureBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, ocispec.Descriptor, error) {
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		blob, blobDesc, err := r.Repository.FetchSignatureBlob(ctx, desc)
		if err == nil && int64(len(blob)) > r.limits.MaxPayloadBytes {
			err = &oci.LimitError{What: "signature payload", Limit: r.limits.MaxPayloadBytes}
		}
		if err != nil {
			r.s.fail("signature "+desc.Digest.String(), err)
		}
		return blob, blobDesc, err
	}
	blob, blobDesc, err := r.fetchEnvelope(ctx, desc)
	if err != nil {
		r.s.fail("signature "+desc.Digest.String(), err)
	}
	return blob, blobDesc, err
}

func (r *repository) fetchEnvelope(ctx context.Context, desc ocispec.Descriptor) ([]byte, ocispec.Descriptor, error) {
	if desc.Size > r.limits.MaxResponseBytes {
		return nil, ocispec.Descriptor{}, &oci.LimitError{What: "response body", Limit: r.limits.MaxResponseBytes}
	}
	b, err := content.FetchAll(ctx, r.remote.Manifests(), desc)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature manifest %s: %w", desc.Digest, err)
	}
	if len(m.Layers) != 1 {
		return nil, ocispec.Descriptor{}, fmt.Errorf("signature manifest %s has %d layers, want exactly one signature envelope", desc.Digest, len(m.Layers))
	}
	env := m.Layers[0]
	if env.Size > r.limits.MaxPayloadBytes {
		return nil, ocispec.Descriptor{}, &oci.LimitError{What: "signature payload", Limit: r.limits.MaxPayloadBytes}
	}
	blob, err := content.FetchAll(ctx, r.remote.Blobs(), env)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	return blob, env, nil
}
