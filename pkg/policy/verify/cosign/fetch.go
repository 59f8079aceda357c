package cosign

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// session is one verification's registry access: the registry handshake
// shared by every verification with the same credentials (made on first
// use, see oci.Client.RegistryTransport), the caller's context on every
// call, Signet's limits, and the budget of signatures this verification
// may examine.
type session struct {
	ctx    context.Context
	client *oci.Client
	img    policy.Image
	digest name.Digest
	limits oci.Limits
	budget int
	// budgetWhat and payloadWhat are the LimitError.What of the budget
	// being spent and of the payload size: signatures', then attestations'.
	budgetWhat, payloadWhat string

	// The puller and its options, made on first use; pullErr is why the
	// handshake failed (reported by every read, each with its own what).
	puller  *remote.Puller
	opts    []remote.Option
	pullErr error

	// The referrers listing, read once for signatures and attestations.
	refs     []v1.Descriptor
	refsErr  error
	refsRead bool
}

func newSession(ctx context.Context, client *oci.Client, img policy.Image) (*session, error) {
	// Re-parse with the client's rule for plain HTTP.
	d, err := name.NewDigest(img.Ref.String(), client.NameOptions(img.Ref.RegistryStr())...)
	if err != nil {
		return nil, err
	}
	return &session{
		ctx:         ctx,
		client:      client,
		img:         img,
		digest:      d,
		limits:      client.Limits(),
		budget:      client.Limits().MaxSignatures,
		budgetWhat:  budgetLimit,
		payloadWhat: "signature payload size",
	}, nil
}

// pull returns the session's puller, making the registry handshake (or
// reusing a shared one) on first use.
func (s *session) pull() (*remote.Puller, error) {
	if s.puller == nil && s.pullErr == nil {
		opts, err := s.client.RemoteOptions(s.ctx, s.digest.Context(), s.img.Keychain)
		if err != nil {
			s.pullErr = err
			return nil, err
		}
		if s.puller, s.pullErr = remote.NewPuller(opts...); s.pullErr == nil {
			s.opts = append(opts, remote.Reuse(s.puller))
		}
	}
	return s.puller, s.pullErr
}

// fetchError is a registry read that failed: what was being read, and why.
type fetchError struct {
	what string // "the sha256-….sig tag", "referrer sha256:…", "the referrers of sha256:…"
	err  error
}

func (e *fetchError) Error() string { return "reading " + e.what + ": " + oci.Redact(e.err) }
func (e *fetchError) Unwrap() error { return e.err }

// budgetLimit is the LimitError.What of the signature budget.
const budgetLimit = "signatures examined per image"

// take spends one unit of the signature budget.
func (s *session) take() error {
	if s.budget <= 0 {
		return &oci.LimitError{What: s.budgetWhat, Limit: int64(s.limits.MaxSignatures)}
	}
	s.budget--
	return nil
}

// manifest reads the manifest ref names. A 404 is returned as (nil, nil).
func (s *session) manifest(ref name.Reference, what string) (*v1.Manifest, error) {
	p, err := s.pull()
	if err != nil {
		return nil, &fetchError{what, err}
	}
	desc, err := p.Get(s.ctx, ref)
	if oci.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, &fetchError{what, err}
	}
	m, err := v1.ParseManifest(strings.NewReader(string(desc.Manifest)))
	if err != nil {
		return nil, &fetchError{what, &oci.MalformedError{Err: err}}
	}
	return m, nil
}

// payload reads one signature blob, refusing it unread when its
// descriptor is over MaxPayloadBytes. go-containerregistry checks the
// blob's digest and size against the descriptor as it reads.
func (s *session) payload(desc v1.Descriptor, what string) ([]byte, error) {
	limit := s.limits.MaxPayloadBytes
	if desc.Size > limit {
		return nil, &fetchError{what, &oci.LimitError{What: s.payloadWhat, Limit: limit,
			URL: fmt.Sprintf("%s@%s (%d bytes)", s.digest.Context().Name(), desc.Digest, desc.Size)}}
	}
	p, err := s.pull()
	if err != nil {
		return nil, &fetchError{what, err}
	}
	layer, err := p.Layer(s.ctx, s.digest.Context().Digest(desc.Digest.String()))
	if err != nil {
		return nil, &fetchError{what, err}
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, &fetchError{what, err}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, &fetchError{what, err}
	}
	if int64(len(b)) > limit {
		return nil, &fetchError{what, &oci.LimitError{What: s.payloadWhat, Limit: limit,
			URL: fmt.Sprintf("%s@%s", s.digest.Context().Name(), desc.Digest)}}
	}
	if int64(len(b)) != desc.Size {
		return nil, &fetchError{what, &oci.MalformedError{Err: fmt.Errorf("blob %s has %d bytes, its descriptor says %d", desc.Digest, len(b), desc.Size)}}
	}
	return b, nil
}

// referrers lists the manifests that refer to the image: the OCI 1.1
// referrers API, or, where the registry has none, the referrers tag schema
// (the sha256-<hex> index tag). go-containerregistry does both.
func (s *session) referrers() ([]v1.Descriptor, error) {
	if !s.refsRead {
		s.refs, s.refsErr = s.readReferrers()
		s.refsRead = true
	}
	return s.refs, s.refsErr
}

func (s *session) readReferrers() ([]v1.Descriptor, error) {
	what := "the referrers of " + s.digest.DigestStr()
	p, err := s.pull()
	if err != nil {
		return nil, &fetchError{what, err}
	}
	if s.client.LacksReferrersAPI(s.digest.RegistryStr()) {
		// Straight to the referrers tag schema, as go-containerregistry
		// would after the API's 404.
		tag := oci.ReferrersTag(digest.Digest(s.digest.DigestStr()))
		desc, err := p.Get(s.ctx, s.digest.Context().Tag(tag))
		if oci.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, &fetchError{what, err}
		}
		im, err := v1.ParseIndexManifest(strings.NewReader(string(desc.Manifest)))
		if err != nil {
			return nil, &fetchError{what, &oci.MalformedError{Err: err}}
		}
		return im.Manifests, nil
	}
	idx, err := remote.Referrers(s.digest, s.opts...)
	if err != nil {
		return nil, &fetchError{what, err}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, &fetchError{what, &oci.MalformedError{Err: err}}
	}
	return im.Manifests, nil
}

// imageMissing reports whether the registry says the image's manifest does
// not exist. Other failures report false: the caller only words its
// "no signature" answer with it.
func (s *session) imageMissing() bool {
	p, err := s.pull()
	if err != nil {
		return false
	}
	_, err = p.Head(s.ctx, s.digest)
	return oci.IsNotFound(err)
}
