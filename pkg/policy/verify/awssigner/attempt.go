package awssigner

import (
	"context"
	"time"

	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// session records one Verify call as notation-go runs it: what the
// registry did and, per signature examined, what each check found.
// notation-go reports failures as formatted strings; the session keeps the
// facts, so a denial can name the real cause. notation-go runs a
// verification sequentially, so a session needs no lock.
type session struct {
	// registryErr is the first registry failure.
	registryErr error
	// registryWhat says what was being read when it happened.
	registryWhat string
	// resolved is the image's manifest descriptor.
	resolved ocispec.Descriptor
	attempts []*attempt
}

func (s *session) fail(what string, err error) {
	if s.registryErr == nil {
		s.registryErr, s.registryWhat = err, what
	}
}

// attempt is what one signature's verification found.
type attempt struct {
	// critical says, per extended attribute of the envelope, whether it is
	// critical (the plugin request carries values only).
	critical map[string]bool

	// Set by the plugin.
	profileVersion  string
	job             string
	unknownCritical []string
	untrusted       bool
	revoked         []string
	revocationErr   error
	warning         string
	// validUntil is when the revocation answer the attempt passed on expires.
	validUntil time.Time
	pluginErr  error

	// Set when notation-go returns.
	outcome *notation.VerificationOutcome
	err     error
}

type sessionKey struct{}
type attemptKey struct{}

func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

func sessionFrom(ctx context.Context) *session {
	if s, ok := ctx.Value(sessionKey{}).(*session); ok {
		return s
	}
	return &session{} // a throwaway: notation-go called us outside Verify
}

func attemptFrom(ctx context.Context) *attempt {
	if a, ok := ctx.Value(attemptKey{}).(*attempt); ok {
		return a
	}
	return &attempt{}
}

// recordingVerifier wraps notation-go's verifier: it opens an attempt for
// every signature notation.Verify hands it.
type recordingVerifier struct {
	inner notation.Verifier
}

func (v recordingVerifier) Verify(ctx context.Context, desc ocispec.Descriptor, sig []byte, opts notation.VerifierVerifyOptions) (*notation.VerificationOutcome, error) {
	s := sessionFrom(ctx)
	a := &attempt{critical: criticalAttributes(opts.SignatureMediaType, sig)}
	s.attempts = append(s.attempts, a)
	a.outcome, a.err = v.inner.Verify(context.WithValue(ctx, attemptKey{}, a), desc, sig, opts)
	return a.outcome, a.err
}

// criticalAttributes reads, without verifying, which extended attributes
// of an envelope are critical. An envelope that does not parse fails
// notation-go's integrity check anyway.
func criticalAttributes(mediaType string, sig []byte) map[string]bool {
	env, err := signature.ParseEnvelope(mediaType, sig)
	if err != nil {
		return nil
	}
	content, err := env.Content()
	if err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, attr := range content.SignerInfo.SignedAttributes.ExtendedAttributes {
		if k, ok := attr.Key.(string); ok {
			m[k] = attr.Critical
		}
	}
	return m
}
