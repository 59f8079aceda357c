package oci

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// limitedTransport enforces Limits on every registry response, below any
// library: go-containerregistry and oras-go both read through it, so a
// hostile registry cannot make either buffer an unbounded body or follow an
// endless redirect chain.
type limitedTransport struct {
	base   http.RoundTripper
	limits Limits
	// plainHTTP is the Client's rule. go-containerregistry would fall back
	// to plain HTTP on its own for private-range and *.local hosts; the
	// transport refuses that, so credentials and signatures never cross
	// the network in the clear unless the operator said so.
	plainHTTP func(host string) bool
	// observe is Options.Observe; nil observes nothing.
	observe func(host string, status int, err error, took time.Duration)
	// referrers is told of every answer (Client.noteReferrersAnswer).
	referrers func(req *http.Request, resp *http.Response)
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// http.Client sets req.Response on a request it makes to follow a
	// redirect; the chain's length is the number of redirects so far.
	hops, origin := 0, req
	for r := req.Response; r != nil && r.Request != nil; r = r.Request.Response {
		hops++
		origin = r.Request
	}
	if hops > t.limits.MaxRedirects {
		return nil, &LimitError{What: "redirects", Limit: int64(t.limits.MaxRedirects), URL: redact(req)}
	}
	if hops > 0 {
		if err := redirectAllowed(origin.URL, req.URL); err != nil {
			return nil, err
		}
	}
	if req.URL.Scheme == "http" && !t.plainHTTP(req.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to registry %s: only loopback registries and those named with --insecure-registry may be reached without TLS", req.URL.Host)
	}
	// go-containerregistry pings a plain-HTTP registry over HTTPS and plain
	// HTTP at once and keeps the first answer: a wasted connection and TLS
	// handshake per ping. Signet reaches those registries over plain HTTP
	// only (as oras-go does for notation), so the HTTPS attempt fails here,
	// unsent, and the plain-HTTP one starts at once.
	if req.URL.Scheme == "https" && hops == 0 && t.plainHTTP(req.URL.Host) {
		return nil, fmt.Errorf("plain-HTTP registry %s: HTTPS not tried", req.URL.Host)
	}
	begin := time.Now()
	resp, err := t.base.RoundTrip(req)
	if t.observe != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.observe(req.URL.Host, status, err, time.Since(begin))
	}
	if err != nil {
		return nil, err
	}
	if t.referrers != nil {
		t.referrers(req, resp)
	}
	limit := t.limits.MaxResponseBytes
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, &LimitError{What: "response body", Limit: limit, URL: redact(req)}
	}
	resp.Body = &limitedBody{rc: resp.Body, remaining: limit, limit: limit, url: redact(req)}
	return resp, nil
}

// redirectAllowed: plain HTTP and loopback are allowed only for the
// registry the user named (PlainHTTP). A registry may not use a redirect
// to send Signet to its own loopback interface (metrics, health, a
// sidecar) or from HTTPS down to plain HTTP.
func redirectAllowed(from, to *url.URL) error {
	switch {
	case isLoopback(to.Host) && !isLoopback(from.Host):
		return fmt.Errorf("refusing redirect from registry %s to %s: a registry may not redirect Signet to a loopback address", from.Host, to.Host)
	case from.Scheme == "https" && to.Scheme == "http":
		return fmt.Errorf("refusing redirect from registry %s to %s: a registry may not redirect Signet from HTTPS to plain HTTP", from.Host, to.Host)
	}
	return nil
}

// isLoopback reports whether host (host or host:port) names this machine:
// localhost (and *.localhost), a loopback address, or the unspecified
// address (which Linux connects to loopback).
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// redact drops the query, which for redirected blob reads carries a
// pre-signed credential.
func redact(req *http.Request) string {
	u := *req.URL
	u.RawQuery = ""
	u.User = nil
	return u.String()
}

// limitedBody fails the read that goes past the limit instead of silently
// truncating: a truncated manifest must not parse as a smaller valid one.
type limitedBody struct {
	rc        io.ReadCloser
	remaining int64
	limit     int64
	url       string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, &LimitError{What: "response body", Limit: b.limit, URL: b.url}
		}
		return 0, err
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.rc.Read(p)
	b.remaining -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
