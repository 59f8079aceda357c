package oci

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// countingRegistry answers the /v2/ ping with status() and counts the
// connections and pings it gets.
type countingRegistry struct {
	host         string
	conns, pings atomic.Int32
	status       atomic.Int32
}

func newCountingRegistry(t *testing.T) *countingRegistry {
	r := &countingRegistry{}
	r.status.Store(http.StatusOK)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v2/" {
			r.pings.Add(1)
			w.WriteHeader(int(r.status.Load()))
			return
		}
		http.NotFound(w, req)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// TestHandshakeIsPlainHTTPOnlyForLoopback: go-containerregistry would
// race an HTTPS ping against the plain-HTTP one; Signet does not send it,
// so the handshake with a loopback registry is one connection, one ping.
func TestHandshakeIsPlainHTTPOnlyForLoopback(t *testing.T) {
	r := newCountingRegistry(t)
	c := New(Options{})
	if _, err := c.RegistryTransport(context.Background(), mustRepository(t, r.host+"/app"), nil); err != nil {
		t.Fatal(err)
	}
	if conns, pings := r.conns.Load(), r.pings.Load(); conns != 1 || pings != 1 {
		t.Fatalf("%d connections and %d pings, want 1 and 1", conns, pings)
	}
}

// TestFailedHandshakeIsNotKept: a registry that failed its ping is asked
// again by the next request; a handshake that succeeded is reused.
func TestFailedHandshakeIsNotKept(t *testing.T) {
	r := newCountingRegistry(t)
	r.status.Store(http.StatusServiceUnavailable)
	c := New(Options{})
	repo := mustRepository(t, r.host+"/app")
	if _, err := c.RegistryTransport(context.Background(), repo, nil); err == nil {
		t.Fatal("a handshake with a registry answering 503 succeeded")
	}
	failed := r.pings.Load()
	r.status.Store(http.StatusOK)
	for range 3 {
		if _, err := c.RegistryTransport(context.Background(), repo, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.pings.Load() - failed; got != 1 {
		t.Fatalf("%d pings after the failed handshake, want 1", got)
	}
}

func mustRepository(t *testing.T, s string) name.Repository {
	t.Helper()
	repo, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}
