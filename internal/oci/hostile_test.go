package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/test/servers/registry"
)

// budget stands in for one admission's verification budget (the webhook's
// is --webhook-timeout minus 2s: 8s by default); the cases that wait for
// it use a shorter one to keep the suite quick.
const budget = 2 * time.Second

// maxAlloc bounds what one hostile answer may make Signet allocate, server
// included (it runs in this process): a few times MaxResponseBytes.
const maxAlloc = 32 << 20

// hostileCase is one registry that misbehaves, and what listing an
// image's referrers from it must answer.
type hostileCase struct {
	name string
	// serve starts the registry and returns its host:port.
	serve func(t *testing.T) string
	// want is the error's wording given the host and the image's digest;
	// "" means the listing must succeed with wantListed descriptors.
	want       func(host string, subject digest.Digest) string
	wantListed int
	// waits: the answer comes at the budget, not before.
	waits bool
}

func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func staticServer(t *testing.T, c *registry.Content) string {
	t.Helper()
	return httpServer(t, registry.NewStatic(c))
}

var hostileSubject = digest.FromString("the image")

func referrersURL(host string, subject digest.Digest) string {
	return "http://" + host + "/v2/hostile/app/referrers/" + subject.String()
}

func hostileCases() []hostileCase {
	timedOut := func(host string, _ digest.Digest) string {
		return "registry " + host + " did not answer in time reading the image's referrers"
	}
	return []hostileCase{{
		name:  "one byte per second",
		serve: func(t *testing.T) string { return httpServer(t, registry.Trickle(time.Second)) },
		want:  timedOut, waits: true,
	}, {
		name:  "accepts the connection and never answers",
		waits: true,
		serve: func(t *testing.T) string {
			s, err := registry.NewSilent()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			return s.Addr()
		},
		want: timedOut,
	}, {
		name:  "redirect loop",
		serve: func(t *testing.T) string { return httpServer(t, registry.RedirectLoop()) },
		want: func(host string, d digest.Digest) string {
			return "registry exceeded Signet's limit on redirects (3) at " + referrersURL(host, d)
		},
	}, {
		name:  "Content-Length of 10 GiB",
		serve: func(t *testing.T) string { return httpServer(t, registry.HugeContentLength(10<<30)) },
		want: func(host string, d digest.Digest) string {
			return "registry exceeded Signet's limit on response body (4194304) at " + referrersURL(host, d)
		},
	}, {
		name:  "compressed body expanding without bound",
		serve: func(t *testing.T) string { return httpServer(t, registry.GzipBomb()) },
		want: func(host string, d digest.Digest) string {
			return "registry exceeded Signet's limit on response body (4194304) at " + referrersURL(host, d)
		},
	}, {
		name: "referrers index with 100,000 entries",
		serve: func(t *testing.T) string {
			c := registry.NewContent()
			c.Referrers[hostileSubject.String()] = bigIndex(t, 100_000)
			return staticServer(t, c)
		},
		want: func(host string, d digest.Digest) string {
			return "registry exceeded Signet's limit on response body (4194304) at " + referrersURL(host, d)
		},
	}, {
		name: "referrers index with 100,000 entries, chunked",
		serve: func(t *testing.T) string {
			b := bigIndex(t, 100_000)
			return httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
				w.(http.Flusher).Flush() // no Content-Length: the cap must hold while reading
				_, _ = w.Write(b)
			}))
		},
		want: func(host string, d digest.Digest) string {
			return "registry exceeded Signet's limit on response body (4194304) at " + referrersURL(host, d)
		},
	}, {
		name: "index that lists itself",
		serve: func(t *testing.T) string {
			// The referrers API and the tag schema's index both list the
			// image itself, and the index its own tag's digest.
			c := registry.NewContent()
			self := index(t, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, ArtifactType: notationType, Digest: hostileSubject, Size: 100})
			c.Referrers[hostileSubject.String()] = self
			c.AddManifest(ocispec.MediaTypeImageIndex, self, oci.ReferrersTag(hostileSubject))
			return staticServer(t, c)
		},
		wantListed: 1,
	}, {
		name: "manifest whose digest does not match its content",
		serve: func(t *testing.T) string {
			c := registry.NewContent()
			c.NoReferrersAPI = true
			c.Manifests[oci.ReferrersTag(hostileSubject)] = registry.Manifest{
				MediaType: ocispec.MediaTypeImageIndex, Body: bigIndex(t, 3), Digest: digest.FromString("another index").String(),
			}
			return staticServer(t, c)
		},
		want: func(host string, d digest.Digest) string {
			return "registry " + host + " sent a malformed response reading the image's referrers: referrers tag " + oci.ReferrersTag(d) +
				" does not match its digest " + digest.FromString("another index").String()
		},
	}}
}

func index(t *testing.T, descs ...ocispec.Descriptor) []byte {
	t.Helper()
	b, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bigIndex(t *testing.T, n int) []byte {
	t.Helper()
	descs := make([]ocispec.Descriptor, n)
	for i := range descs {
		descs[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: notationType, Digest: digest.FromString(fmt.Sprint(i)), Size: 700}
	}
	return index(t, descs...)
}

// listReferrers lists the Notation referrers of hostileSubject on host
// within budget, as the AWS Signer verifier does, and words a failure as
// the verifiers do: a limit in its own words, anything else with Describe.
func listReferrers(ctx context.Context, c *oci.Client, host string) (int, string, error) {
	repo, err := name.NewRepository(host + "/hostile/app")
	if err != nil {
		return 0, "", err
	}
	listed := 0
	err = oci.Referrers(ctx, c.OrasRepository(repo, nil), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: hostileSubject, Size: 100}, notationType, oci.DefaultLimits,
		func(ds []ocispec.Descriptor) error {
			listed += len(ds)
			return nil
		})
	if err == nil {
		return listed, "", nil
	}
	var le *oci.LimitError
	if errors.As(err, &le) {
		return listed, le.Error(), nil
	}
	return listed, oci.Describe(err, host, repo.String(), "the image's referrers"), nil
}

// measured runs fn and returns how long it took and how many bytes the
// process allocated meanwhile.
func measured(fn func()) (time.Duration, uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	begin := time.Now()
	fn()
	took := time.Since(begin)
	runtime.ReadMemStats(&after)
	return took, after.TotalAlloc - before.TotalAlloc
}

// TestHostileRegistries: every hostile registry is answered within the
// budget, with bounded memory, in exact words.
func TestHostileRegistries(t *testing.T) {
	c := oci.New(oci.Options{})
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.serve(t)
			var listed int
			var msg string
			var err error
			took, alloc := measured(func() {
				ctx, cancel := context.WithTimeout(context.Background(), budget)
				defer cancel()
				listed, msg, err = listReferrers(ctx, c, host)
			})
			t.Logf("answered in %s, %d KiB allocated: %q", took.Round(time.Millisecond), alloc>>10, msg)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tc.want != nil {
				want = tc.want(host, hostileSubject)
			}
			if msg != want || listed != tc.wantListed {
				t.Fatalf("got %d listed, %q\nwant %d listed, %q", listed, msg, tc.wantListed, want)
			}
			if took > budget+500*time.Millisecond || !tc.waits && took > budget/2 {
				t.Fatalf("answered after %s (budget %s)", took, budget)
			}
			if alloc > maxAlloc {
				t.Fatalf("%d bytes allocated, more than %d", alloc, maxAlloc)
			}
		})
	}
}
