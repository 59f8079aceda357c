package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signet-dev/signet/internal/expiring"
)

// HandshakeTTL is how long one registry handshake (the /v2/ ping and, for
// token registries, the token exchange) is reused. go-containerregistry
// exchanges an expired token again on the registry's 401 on its own; the
// TTL bounds how long a registry's changed auth scheme, or a credential's
// authenticator, goes unnoticed.
const HandshakeTTL = 5 * time.Minute

// maxHandshakes bounds the shared handshakes (registries × credential
// sets); past it, expired ones go first.
const maxHandshakes = 1024

// maxHandshakeRepositories bounds the repositories one shared handshake
// serves. A token registry's token grows a scope for each repository read
// through it (go-containerregistry adds the scope the registry's challenge
// asks for); past the bound a fresh handshake starts a fresh token.
const maxHandshakeRepositories = 64

// retryBackoff keeps go-containerregistry's retries of 5xx and 429 answers
// well inside an admission budget (its default waits 1 s, then 3 s).
var retryBackoff = remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}

// retryStatusCodes are go-containerregistry's defaults: answers worth
// asking again.
var retryStatusCodes = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// handshakeKey is one registry and one set of credentials. The
// credentials are named by a hash of what the keychain resolved to, so two
// requests share a handshake only when they would send exactly the same
// credentials to the registry.
type handshakeKey struct {
	registry    string
	credentials string
}

// handshake is one authenticated go-containerregistry transport and the
// repositories it has served.
type handshake struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	repos map[string]bool
}

// admit reports whether repo may use this handshake, counting it in.
func (h *handshake) admit(repo string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.repos[repo] {
		return true
	}
	if len(h.repos) >= maxHandshakeRepositories {
		return false
	}
	h.repos[repo] = true
	return true
}

// RegistryTransport is the go-containerregistry transport for reading
// repo with the request's credentials: authenticated, retrying transient
// failures, on the shared limited transport. The registry handshake is
// made once per registry and credential set and reused for HandshakeTTL;
// a failed handshake is not kept. Hand it to remote.WithTransport: it is a
// transport.Wrapper, so go-containerregistry adds no handshake of its own.
func (c *Client) RegistryTransport(ctx context.Context, repo name.Repository, requestKeychain authn.Keychain) (http.RoundTripper, error) {
	authr, err := authn.Resolve(ctx, c.Keychain(requestKeychain), repo)
	if err != nil {
		return nil, err
	}
	cfg, err := authn.Authorization(ctx, authr)
	if err != nil {
		return nil, err
	}
	key := handshakeKey{registry: repo.RegistryStr(), credentials: credentialsID(cfg)}
	if h, ok := c.handshakes.Get(key); ok && h.admit(repo.Name()) {
		return h.rt, nil
	}
	base := transport.NewRetry(c.transport,
		transport.WithRetryBackoff(retryBackoff), transport.WithRetryStatusCodes(retryStatusCodes...))
	if c.userAgent != "" {
		base = transport.NewUserAgent(base, c.userAgent)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, authr, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	c.handshakes.Put(key, &handshake{rt: rt, repos: map[string]bool{repo.Name(): true}})
	return rt, nil
}

// credentialsID names credentials without keeping them: a hash of
// everything the registry would be sent. Anonymous is "".
func credentialsID(cfg *authn.AuthConfig) string {
	if cfg == nil || *cfg == (authn.AuthConfig{}) {
		return ""
	}
	b, _ := json.Marshal(cfg) // plain strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// RemoteOptions are the go-containerregistry options for reading repo:
// the shared handshake (RegistryTransport) and the caller's context, so
// the caller's deadline bounds every call.
func (c *Client) RemoteOptions(ctx context.Context, repo name.Repository, requestKeychain authn.Keychain) ([]remote.Option, error) {
	rt, err := c.RegistryTransport(ctx, repo, requestKeychain)
	if err != nil {
		return nil, err
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(rt)}, nil
}

// newHandshakes is the Client's handshake cache.
func newHandshakes() *expiring.Map[handshakeKey, *handshake] {
	return expiring.New[handshakeKey, *handshake](HandshakeTTL, maxHandshakes, nil)
}
