// Package oci is Signet's one registry layer: the shared HTTP transport, the
// limits that protect Signet from hostile registries, the plain-HTTP rule,
// and the option sets that go-containerregistry (cosign) and oras-go
// (notation) need to use them. Both signature verifiers read registries only
// through a Client, so a limit set here holds for every scheme.
package oci

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-dev/signet/internal/expiring"
)

// Limits bound what Signet reads from a registry. A registry that exceeds
// one gets a LimitError, never unbounded memory or time.
type Limits struct {
	// MaxResponseBytes caps any one response body (manifests, signature
	// blobs, referrer indexes). Signet never downloads image layers, so
	// this is small.
	MaxResponseBytes int64
	// MaxPayloadBytes caps one signature payload or envelope.
	MaxPayloadBytes int64
	// MaxSignatures caps how many signatures are examined for one digest.
	MaxSignatures int
	// MaxRedirects caps redirects followed for one request (ECR sends blob
	// reads to S3 once).
	MaxRedirects int
	// MaxReferrerPages and MaxReferrers cap the referrers API's pagination
	// for one digest: pages followed, and entries listed over all of them.
	// Zero takes the default.
	MaxReferrerPages int
	MaxReferrers     int
}

// DefaultLimits are generous for real signatures and small for an attacker.
var DefaultLimits = Limits{
	MaxResponseBytes: 4 << 20,
	MaxPayloadBytes:  1 << 20,
	MaxSignatures:    32,
	MaxRedirects:     3,
	MaxReferrerPages: 8,
	MaxReferrers:     512,
}

// Options configure a Client.
type Options struct {
	// Keychain supplies default registry credentials (docker config, ECR).
	// Nil means anonymous.
	Keychain authn.Keychain
	// InsecureRegistries are hosts (host or host:port) that may be reached
	// over plain HTTP. Loopback registries always may.
	InsecureRegistries []string
	// Limits; the zero value means DefaultLimits.
	Limits Limits
	// Transport is the base transport; nil means a tuned clone of
	// http.DefaultTransport. Tests use it to inject faults.
	Transport http.RoundTripper
	// MaxConnsPerHost bounds the connections (dialing, active and idle) to
	// one registry host, so a burst of admissions cannot open thousands of
	// them; requests beyond it wait for one. Zero means
	// DefaultMaxConnsPerHost. Ignored when Transport is set.
	MaxConnsPerHost int
	// UserAgent is sent with every request.
	UserAgent string
	// Observe, when set, is told about every request sent to a registry
	// (metrics): the host (host:port), the HTTP status (0 when no response
	// came: err says why) and how long the response took to start. It must
	// be fast and safe for concurrent use.
	Observe func(host string, status int, err error, took time.Duration)
}

// DefaultMaxConnsPerHost is Options.MaxConnsPerHost's default.
const DefaultMaxConnsPerHost = 32

// Client is shared by every verifier and request: one transport, so
// connections to a registry are reused across admissions.
type Client struct {
	keychain  authn.Keychain
	insecure  map[string]bool
	limits    Limits
	transport http.RoundTripper
	userAgent string
	// handshakes are the registry handshakes shared between requests
	// (see RegistryTransport).
	handshakes *expiring.Map[handshakeKey, *handshake]
	// noReferrersAPI are the registries known to lack the referrers API.
	noReferrersAPI *expiring.Map[string, bool]
}

// New builds a Client.
func New(opts Options) *Client {
	limits := opts.Limits
	if limits == (Limits{}) {
		limits = DefaultLimits
	}
	if limits.MaxReferrerPages <= 0 {
		limits.MaxReferrerPages = DefaultLimits.MaxReferrerPages
	}
	if limits.MaxReferrers <= 0 {
		limits.MaxReferrers = DefaultLimits.MaxReferrers
	}
	base := opts.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxConnsPerHost = opts.MaxConnsPerHost
		if t.MaxConnsPerHost <= 0 {
			t.MaxConnsPerHost = DefaultMaxConnsPerHost
		}
		t.MaxIdleConnsPerHost = t.MaxConnsPerHost
		t.TLSHandshakeTimeout = 5 * time.Second
		t.ResponseHeaderTimeout = 10 * time.Second
		base = t
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.NewMultiKeychain() // anonymous
	}
	c := &Client{
		keychain:       kc,
		insecure:       map[string]bool{},
		limits:         limits,
		userAgent:      opts.UserAgent,
		handshakes:     newHandshakes(),
		noReferrersAPI: expiring.New[string, bool](HandshakeTTL, maxHandshakes, nil),
	}
	for _, h := range opts.InsecureRegistries {
		c.insecure[strings.ToLower(h)] = true
	}
	c.transport = &limitedTransport{base: base, limits: limits, plainHTTP: c.PlainHTTP, observe: opts.Observe, referrers: c.noteReferrersAnswer}
	return c
}

// Limits returns the limits in force.
func (c *Client) Limits() Limits { return c.limits }

// Transport is the shared, limited transport. Give it to any library that
// reads registries on Signet's behalf.
func (c *Client) Transport() http.RoundTripper { return c.transport }

// Keychain returns the request's keychain, falling back to the default one.
func (c *Client) Keychain(requestKeychain authn.Keychain) authn.Keychain {
	if requestKeychain == nil {
		return c.keychain
	}
	return authn.NewMultiKeychain(requestKeychain, c.keychain)
}

// PlainHTTP reports whether host (host or host:port) is reached over plain
// HTTP: loopback addresses and explicitly insecure registries only.
func (c *Client) PlainHTTP(host string) bool {
	if c.insecure[strings.ToLower(host)] {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// NameOptions are the go-containerregistry parse options for a reference:
// name.Insecure for plain-HTTP hosts, strict otherwise.
func (c *Client) NameOptions(registry string) []name.Option {
	if c.PlainHTTP(registry) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// LimitError says that a registry exceeded one of Signet's limits.
type LimitError struct {
	What  string // "response body", "signature payload", "signatures", "redirects"
	Limit int64
	URL   string
}

func (e *LimitError) Error() string {
	if e.URL == "" {
		return fmt.Sprintf("registry exceeded Signet's limit on %s (%d)", e.What, e.Limit)
	}
	return fmt.Sprintf("registry exceeded Signet's limit on %s (%d) at %s", e.What, e.Limit, e.URL)
}

// IsLimit reports whether err (or an error it wraps) is a LimitError.
func IsLimit(err error) bool {
	var le *LimitError
	return errors.As(err, &le)
}

// presignedQuery matches the query of a URL in an error message. Registries
// redirect blob reads to pre-signed URLs whose query is a credential.
var presignedQuery = regexp.MustCompile(`(https?://[^\s"?]+)\?[^\s"]*`)

// Redact returns err's message with URL queries removed, for messages
// that reach logs, policy status or users.
func Redact(err error) string {
	if err == nil {
		return ""
	}
	return presignedQuery.ReplaceAllString(err.Error(), "$1")
}
