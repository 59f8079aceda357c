package cosign

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/test/servers/registry"
)

// faultyRegistry is the referrers registry (test/servers/registry, with
// its request counter) behind a switch that injects faults for the
// requests a test picks.
type faultyRegistry struct {
	*registry.Server
	host  string
	fault atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newFaultyRegistry(t *testing.T) *faultyRegistry {
	fr := &faultyRegistry{Server: registry.New()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := fr.fault.Load(); f != nil && (*f)(w, r) {
			return
		}
		fr.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	fr.host = strings.TrimPrefix(srv.URL, "http://")
	return fr
}

// inject makes fault answer every request it returns true for.
func (fr *faultyRegistry) inject(fault func(w http.ResponseWriter, r *http.Request) bool) {
	fr.fault.Store(&fault)
}

// manifests matches manifest reads of the .sig tag and referrers, not the
// /v2/ ping.
func manifests(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/manifests/") || strings.Contains(r.URL.Path, "/referrers/")
}

func TestRegistryFailures(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	v := f.verifierFor(uri)

	for _, tc := range []struct {
		name   string
		fault  func(w http.ResponseWriter, r *http.Request) bool
		reason policy.Reason
		cause  func(host string, d name.Digest) string
	}{{
		name: "500",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if manifests(r) {
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			}
			return false
		},
		reason: policy.ReasonRegistryUnavailable,
		cause: func(host string, d name.Digest) string {
			return "registry " + host + " answered HTTP 500 Internal Server Error reading " + sigTag(d)
		},
	}, {
		name: "500-on-ping",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		},
		reason: policy.ReasonRegistryUnavailable,
		cause: func(host string, d name.Digest) string {
			return "registry " + host + " answered HTTP 500 Internal Server Error reading " + sigTag(d)
		},
	}, {
		name: "garbage",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if manifests(r) {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				io.WriteString(w, "garbage")
				return true
			}
			return false
		},
		reason: policy.ReasonRegistryUnavailable,
		cause: func(host string, d name.Digest) string {
			return "registry " + host + " sent a malformed response reading " + sigTag(d) + ": invalid character 'g' looking for beginning of value"
		},
	}, {
		name: "timeout",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if manifests(r) {
				<-r.Context().Done()
				return true
			}
			return false
		},
		reason: policy.ReasonRegistryUnavailable,
		cause: func(host string, d name.Digest) string {
			return "registry " + host + " did not answer in time reading " + sigTag(d)
		},
	}, {
		name: "403",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if manifests(r) {
				http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
				return true
			}
			return false
		},
		reason: policy.ReasonRegistryUnavailable,
		cause: func(host string, d name.Digest) string {
			return "registry " + host + " denied access reading " + sigTag(d) + " (HTTP 403): give Signet pull access to " + d.Context().Name() +
				" (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret"
		},
	}, {
		name: "endless-redirects",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/blobs/") {
				http.Redirect(w, r, r.URL.Path+"?X-Amz-Signature=secret", http.StatusTemporaryRedirect)
				return true
			}
			return false
		},
		reason: policy.ReasonLimitExceeded,
		cause: func(host string, d name.Digest) string {
			return ""
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			fr := newFaultyRegistry(t)
			d := f.pushImage(fr.host)
			f.sign(d, uri, formatLegacy)
			fr.inject(tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			got := v.Verify(ctx, policy.Image{Ref: d})
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("verification took %s", elapsed)
			}
			if tc.name == "endless-redirects" {
				want := fmt.Sprintf("reading %s: registry exceeded Signet's limit on redirects (3) at http://%s/v2/%s/blobs/", sigTag(d), fr.host, f.repo)
				if got.Reason != tc.reason || !strings.HasPrefix(got.Cause, want) || strings.Contains(got.Cause, "secret") {
					t.Fatalf("result = %s %q, want %s %q…", got.Reason, got.Cause, tc.reason, want)
				}
				return
			}
			expect(t, got, tc.reason, tc.cause(fr.host, d))
			if !got.Transient() {
				t.Fatal("a registry failure must be transient")
			}
		})
	}
}

func TestRegistryRefusesConnections(t *testing.T) {
	f := newFixture(t)
	v := f.verifierFor("awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	d, err := name.NewDigest(host + "/app@sha256:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// go-containerregistry asks for HTTPS first, which Signet does not send
	// to a loopback registry, then plain HTTP.
	expect(t, v.Verify(ctx, policy.Image{Ref: d}), policy.ReasonRegistryUnavailable, fmt.Sprintf(
		"registry %s unavailable reading %s: Get \"https://%s/v2/\": plain-HTTP registry %s: HTTPS not tried; Get \"http://%s/v2/\": dial tcp %s: connect: connection refused",
		host, sigTag(d), host, host, host, host))
}

// A signature under the .sig tag is found with one manifest and one blob
// read: the referrers are not consulted.
func TestLegacySignatureCostsTwoReads(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	v := f.verifierFor(uri)
	fr := newFaultyRegistry(t)
	d := f.pushImage(fr.host)
	f.sign(d, uri, formatLegacy)
	fr.Reset()
	if got := verifyImage(t, v, d); !got.Verified() {
		t.Fatalf("%s %q", got.Reason, got.Cause)
	}
	got := fr.Requests()
	if got[registry.KindManifestGet] != 1 || got[registry.KindBlobGet] != 1 || got[registry.KindReferrers] != 0 {
		t.Fatalf("requests = %v, want one manifest and one blob read", got)
	}
}

// staticKeychain answers every registry with one user's basic credentials.
type staticKeychain string

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: string(k), Password: "secret-of-" + string(k)}, nil
}

// TestOneHandshakePerRegistryAndCredentials: the registry's /v2/ ping is
// made once for every image of one registry read with one credential set,
// whatever the repository; another credential set makes its own, and each
// request carries its own credentials only. A cold verification of a
// legacy signature then costs its manifest and its blob: with the ping,
// the first costs 3 requests, the next 2.
func TestOneHandshakePerRegistryAndCredentials(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	v := f.verifierFor(uri)
	fr := newFaultyRegistry(t)
	var images []name.Digest
	for _, repo := range []string{"team-a/app", "team-b/app", "team-b/app"} {
		f.repo = repo
		d := f.pushImage(fr.host)
		f.sign(d, uri, formatLegacy)
		images = append(images, d)
	}
	var mu sync.Mutex
	var sent []string // the user each manifest and blob read authenticated as
	fr.inject(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/" {
			user, _, _ := r.BasicAuth()
			mu.Lock()
			sent = append(sent, user)
			mu.Unlock()
		}
		return false
	})
	verifyAs := func(d name.Digest, kc authn.Keychain) map[string]int {
		t.Helper()
		fr.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if got := v.Verify(ctx, policy.Image{Ref: d, Keychain: kc}); !got.Verified() {
			t.Fatalf("%s %q", got.Reason, got.Cause)
		}
		return fr.Requests()
	}
	want := func(pings int) map[string]int {
		w := map[string]int{registry.KindManifestGet: 1, registry.KindBlobGet: 1}
		if pings > 0 {
			w[registry.KindPing] = pings
		}
		return w
	}
	for i, step := range []struct {
		image int
		kc    authn.Keychain
		want  map[string]int
	}{
		{0, nil, want(1)},                     // cold: ping, manifest, blob
		{1, nil, want(0)},                     // another repository, same registry and credentials
		{2, nil, want(0)},                     // another image
		{1, staticKeychain("alice"), want(1)}, // another credential set: its own handshake
		{2, staticKeychain("alice"), want(0)},
		{0, staticKeychain("bob"), want(1)},
		{0, staticKeychain("alice"), want(0)},
	} {
		if got := verifyAs(images[step.image], step.kc); fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Fatalf("step %d: requests = %v, want %v", i, got, step.want)
		}
	}
	wantSent := []string{"", "", "", "", "", "", "alice", "alice", "alice", "alice", "bob", "bob", "alice", "alice"}
	if fmt.Sprint(sent) != fmt.Sprint(wantSent) {
		t.Fatalf("credentials sent = %q\nwant %q", sent, wantSent)
	}
}

// TestUnsignedImageCostsThreeRequests: with the handshake made, an image
// with no signature costs the .sig tag, the referrers and the image's
// HEAD (for the "image not found" wording). On a registry without the
// referrers API, whose 404 Signet remembers, the referrers are read from
// the tag schema directly: still three, not four.
func TestUnsignedImageCostsThreeRequests(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	v := f.verifierFor(uri)
	unsignedAt := func(fr *faultyRegistry, n int) []name.Digest {
		var out []name.Digest
		for range n {
			out = append(out, f.pushImage(fr.host))
		}
		return out
	}

	t.Run("with the referrers API", func(t *testing.T) {
		fr := newFaultyRegistry(t)
		ds := unsignedAt(fr, 2)
		expect(t, verifyImage(t, v, ds[0]), policy.ReasonNoSignature, "no signature found")
		fr.Reset()
		expect(t, verifyImage(t, v, ds[1]), policy.ReasonNoSignature, "no signature found")
		want := map[string]int{registry.KindManifestGet: 1, registry.KindReferrers: 1, registry.KindManifestHead: 1}
		if got := fr.Requests(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("requests = %v, want %v", got, want)
		}
	})
	t.Run("without it", func(t *testing.T) {
		fr := newFaultyRegistry(t)
		ds := unsignedAt(fr, 2)
		var apiCalls atomic.Int32
		fr.inject(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/referrers/") {
				return false
			}
			apiCalls.Add(1)
			http.NotFound(w, r) // "404 page not found", as a registry without the route answers
			return true
		})
		expect(t, verifyImage(t, v, ds[0]), policy.ReasonNoSignature, "no signature found")
		if n := apiCalls.Load(); n != 1 {
			t.Fatalf("%d referrers API calls, want 1", n)
		}
		fr.Reset()
		expect(t, verifyImage(t, v, ds[1]), policy.ReasonNoSignature, "no signature found")
		// The .sig tag and the referrers tag (manifest GETs) and the image's HEAD.
		want := map[string]int{registry.KindManifestGet: 2, registry.KindManifestHead: 1}
		if got := fr.Requests(); fmt.Sprint(got) != fmt.Sprint(want) || apiCalls.Load() != 1 {
			t.Fatalf("requests = %v and %d referrers API calls, want %v and none after the first", got, apiCalls.Load()-1, want)
		}
	})
}
