package oci

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// observed records what Options.Observe is told.
type observed struct {
	mu    sync.Mutex
	calls []string
}

func (o *observed) observe(host string, status int, err error, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	call := fmt.Sprintf("%s %d", host, status)
	if err != nil {
		call += " error"
	}
	if took <= 0 {
		call += " without a duration"
	}
	o.calls = append(o.calls, call)
}

func (o *observed) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.calls
	o.calls = nil
	return c
}

// TestObserveSeesEveryRegistryRequest: the hook sees each request that
// reaches a registry with its status (redirect hops included) and
// requests that got no response, whoever made them.
func TestObserveSeesEveryRegistryRequest(t *testing.T) {
	// TLS, as real registries are (ECR); the hook sits above the base
	// transport, which here trusts the test server's certificate.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
			w.WriteHeader(http.StatusOK)
		case "/v2/app/blobs/sha256:abc":
			http.Redirect(w, r, "/storage/abc?X-Amz-Signature=secret", http.StatusTemporaryRedirect)
		case "/storage/abc":
			w.Write([]byte("blob"))
		default:
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	// Named example.com (which the test server's certificate is for), not
	// by its loopback address: Signet reaches loopback registries over
	// plain HTTP only.
	host := "example.com"
	base := srv.Client().Transport.(*http.Transport).Clone()
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == host+":443" {
			addr = srv.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	obs := &observed{}
	c := New(Options{Observe: obs.observe, Transport: base})

	t.Run("go-containerregistry", func(t *testing.T) {
		ref, err := name.ParseReference(host+"/app:v1", c.NameOptions(host)...)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := c.RemoteOptions(context.Background(), ref.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Head(ref, opts...); err == nil {
			t.Fatal("HEAD of a missing manifest succeeded")
		}
		want := []string{host + " 200", host + " 404"} // ping, manifest
		if got := obs.take(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("observed %q, want %q", got, want)
		}
	})
	t.Run("redirect hops", func(t *testing.T) {
		resp, err := (&http.Client{Transport: c.Transport()}).Get("https://" + host + "/v2/app/blobs/sha256:abc")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := []string{host + " 307", host + " 200"}
		if got := obs.take(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("observed %q, want %q", got, want)
		}
	})
	t.Run("no response", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		downHost := strings.TrimPrefix(down.URL, "http://")
		down.Close()
		if resp, err := (&http.Client{Transport: c.Transport()}).Get(down.URL + "/v2/"); err == nil {
			resp.Body.Close()
			t.Fatal("GET of a closed server succeeded")
		}
		want := []string{downHost + " 0 error"}
		if got := obs.take(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("observed %q, want %q", got, want)
		}
	})
	t.Run("refused before sending", func(t *testing.T) {
		// Plain HTTP to a non-loopback host never leaves Signet: nothing
		// reached a registry, so nothing is observed.
		if resp, err := (&http.Client{Transport: c.Transport()}).Get("http://registry.example.com/v2/"); err == nil {
			resp.Body.Close()
			t.Fatal("plain HTTP to a remote registry was sent")
		}
		if got := obs.take(); len(got) != 0 {
			t.Fatalf("observed %q, want nothing", got)
		}
	})
}
