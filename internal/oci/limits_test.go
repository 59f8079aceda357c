package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// endlessReferrers is a registry whose referrers API always has one more
// page (one entry each, a Link to the next), up to 100 pages.
func endlessReferrers(t *testing.T, served *atomic.Int32) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if !strings.Contains(r.URL.Path, "/referrers/") {
			http.NotFound(w, r)
			return
		}
		n := served.Add(1)
		if n < 100 {
			w.Header().Set("Link", fmt.Sprintf(`<%s?page=%d>; rel="next"`, r.URL.Path, n+1))
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
		entry := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/vnd.test",
			Digest: digest.FromString(fmt.Sprint(n)), Size: 2}
		_ = json.NewEncoder(w).Encode(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{entry}})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestReferrerPaginationIsBounded: a registry that keeps paging its
// referrers is read for MaxReferrerPages pages (one more to see it go on),
// then the listing stops with a LimitError naming the limit.
func TestReferrerPaginationIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
		want   string
		pages  int32
	}{
		{"pages", Limits{MaxReferrerPages: 8, MaxReferrers: 512}, "registry exceeded Signet's limit on referrer pages (8)", 9},
		{"entries", Limits{MaxReferrerPages: 8, MaxReferrers: 5}, "registry exceeded Signet's limit on referrers listed (5)", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int32
			host := endlessReferrers(t, &served)
			limits := DefaultLimits
			limits.MaxReferrerPages, limits.MaxReferrers = tc.limits.MaxReferrerPages, tc.limits.MaxReferrers
			c := New(Options{Limits: limits})
			repo, err := name.NewRepository(host + "/app")
			if err != nil {
				t.Fatal(err)
			}
			subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("subject"), Size: 2}
			listed := 0
			err = Referrers(context.Background(), c.OrasRepository(repo, nil), subject, "", c.Limits(), func(d []ocispec.Descriptor) error {
				listed += len(d)
				return nil
			})
			want := "listing referrers of " + subject.Digest.String() + ": " + tc.want
			if err == nil || err.Error() != want || !IsLimit(err) {
				t.Fatalf("err = %v, want %s (a LimitError)", err, want)
			}
			if got := served.Load(); got != tc.pages {
				t.Fatalf("the registry served %d pages, want %d", got, tc.pages)
			}
			if listed != int(tc.pages)-1 {
				t.Fatalf("%d referrers passed on, want %d (the pages within the limit)", listed, tc.pages-1)
			}
		})
	}
}

// TestConnectionsPerHostAreBounded: however many registry reads run at
// once, at most MaxConnsPerHost connections reach one host; the others
// wait for one.
func TestConnectionsPerHostAreBounded(t *testing.T) {
	const limit, requests = 2, 6
	var (
		mu             sync.Mutex
		active, peak   int
		arrived        = make(chan struct{}, requests)
		release        = make(chan struct{})
		seenConns      sync.Map
		distinctConns  atomic.Int32
		remoteAddrSeen = func(addr string) {
			if _, loaded := seenConns.LoadOrStore(addr, true); !loaded {
				distinctConns.Add(1)
			}
		}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remoteAddrSeen(r.RemoteAddr)
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		arrived <- struct{}{}
		<-release
		mu.Lock()
		active--
		mu.Unlock()
	}))
	defer srv.Close()

	hc := &http.Client{Transport: New(Options{MaxConnsPerHost: limit}).Transport()}
	var wg sync.WaitGroup
	for range requests {
		wg.Go(func() {
			resp, err := hc.Get(srv.URL + "/v2/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	for range limit {
		<-arrived
	}
	// A request past the limit would arrive now; give it the time a
	// loopback request takes, many times over.
	select {
	case <-arrived:
		t.Errorf("a request beyond %d connections reached the host", limit)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if peak > limit || distinctConns.Load() > limit {
		t.Fatalf("peak %d concurrent requests over %d connections, want at most %d", peak, distinctConns.Load(), limit)
	}
}

func TestDefaultConnectionsPerHost(t *testing.T) {
	c := New(Options{})
	base := c.Transport().(*limitedTransport).base.(*http.Transport)
	if base.MaxConnsPerHost != DefaultMaxConnsPerHost || DefaultMaxConnsPerHost != 32 {
		t.Fatalf("MaxConnsPerHost = %d, want 32", base.MaxConnsPerHost)
	}
}
