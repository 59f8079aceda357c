package oci

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// sidecar is a plain-HTTP server on 127.0.0.1 standing in for Signet's
// metrics port or a sidecar; it counts the requests that reach it.
func sidecar(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &hits
}

// hostileRegistry is an HTTPS registry at registry.example (the base
// transport dials the test server for that name) that redirects every
// request to location.
func hostileRegistry(t *testing.T, location string) http.RoundTripper {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, location+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test server's own certificate
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "registry.example:") {
			addr = srv.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return base
}

// TestRedirectsCannotReachLoopbackOrDowngrade: a registry the user named
// (not loopback, HTTPS) may not redirect Signet to a loopback address, by
// HTTPS or plain HTTP, nor down to plain HTTP elsewhere, even to a host
// flagged insecure; the loopback server is never reached.
func TestRedirectsCannotReachLoopbackOrDowngrade(t *testing.T) {
	local, hits := sidecar(t)
	for _, tc := range []struct {
		name, location, want string
	}{
		{"plain HTTP to loopback", "http://" + local,
			"refusing redirect from registry registry.example to " + local + ": a registry may not redirect Signet to a loopback address"},
		{"HTTPS to localhost", "https://localhost:" + strings.Split(local, ":")[1],
			"refusing redirect from registry registry.example to localhost:" + strings.Split(local, ":")[1] + ": a registry may not redirect Signet to a loopback address"},
		{"unspecified address", "http://0.0.0.0:" + strings.Split(local, ":")[1],
			"refusing redirect from registry registry.example to 0.0.0.0:" + strings.Split(local, ":")[1] + ": a registry may not redirect Signet to a loopback address"},
		{"downgrade to an insecure registry", "http://mirror.internal:5000",
			"refusing redirect from registry registry.example to mirror.internal:5000: a registry may not redirect Signet from HTTPS to plain HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(Options{Transport: hostileRegistry(t, tc.location), InsecureRegistries: []string{"mirror.internal:5000"}})
			hc := &http.Client{Transport: c.Transport()}
			resp, err := hc.Get("https://registry.example/v2/")
			if err == nil {
				resp.Body.Close()
			}
			want := fmt.Sprintf("Get %q: %s", tc.location+"/v2/", tc.want)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests, want 0", n)
	}
}

// TestLoopbackRegistriesMayRedirectLocally: a registry the user named on
// loopback (the stack's, a kind cluster's) is reached over plain HTTP and
// may redirect within loopback.
func TestLoopbackRegistriesMayRedirectLocally(t *testing.T) {
	local, hits := sidecar(t)
	srv := httptest.NewServer(http.RedirectHandler("http://"+local+"/v2/", http.StatusTemporaryRedirect))
	defer srv.Close()
	hc := &http.Client{Transport: New(Options{}).Transport()}
	resp, err := hc.Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("the redirect target got %d requests, want 1", hits.Load())
	}
}
