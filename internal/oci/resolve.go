package oci

import (
	"context"

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
	opts, err := c.RemoteOptions(ctx, ref.Context(), requestKeychain)
	if err != nil {
		return name.Digest{}, &ResolveError{Failure: Classify(err), msg: Redact(err)}
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return name.Digest{}, &ResolveError{Failure: Classify(err), msg: Redact(err)}
	}
	return ref.Context().Digest(desc.Digest.String()), nil
}

// ResolveError is a failed tag resolution; Transient tells a registry that
// could not answer from one that said no (not found, access denied).
type ResolveError struct {
	Failure Failure
	msg     string
}

func (e *ResolveError) Error() string { return e.msg }

// Transient reports whether retrying may help.
func (e *ResolveError) Transient() bool {
	return e.Failure == FailureTimeout || e.Failure == FailureUnavailable
}

// Denied reports whether the registry refused the credentials (401, 403).
func (e *ResolveError) Denied() bool { return e.Failure == FailureDenied }
