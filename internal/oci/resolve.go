package oci

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Resolve returns the digest a tag points at now, with one HEAD request
// (a GET when the registry does not answer HEAD with a digest). Signatures
// bind digests: callers resolve once and verify, and pin, the digest.
func (c *Client) Resolve(ctx context.Context, ref name.Reference, requestKeychain authn.Keychain) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	// Re-parse with this client's plain-HTTP rule for the registry.
	ref, err := name.ParseReference(ref.String(), c.NameOptions(ref.Context().RegistryStr())...)
	if err != nil {
		return name.Digest{}, err
	}
	desc, err := remote.Head(ref, c.RemoteOptions(ctx, requestKeychain)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("%s", Redact(err))
	}
	return ref.Context().Digest(desc.Digest.String()), nil
}
