package registry_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/test/servers/registry"
)

const signatureType = "application/vnd.example.signature"

// signedImage is an image and an artifact whose manifest names the image
// as its subject, as pushed to a fresh registry.
type signedImage struct {
	srv      *registry.Server
	url      string
	tag      name.Tag
	image    v1.Hash
	layer    v1.Hash
	artifact v1.Descriptor
}

func pushSignedImage(t *testing.T) signedImage {
	t.Helper()
	srv := registry.New()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	tag, err := name.NewTag(strings.TrimPrefix(hs.URL, "http://") + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(tag, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	// Subject last: ConfigMediaType rebuilds the manifest without it.
	artifact := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), signatureType)
	artifact = mutate.Subject(artifact, *desc).(v1.Image)
	artDigest, err := artifact.Digest()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := artifact.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag.Context().Digest(artDigest.String()), artifact, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	return signedImage{
		srv: srv, url: hs.URL, tag: tag, image: desc.Digest, layer: layer,
		artifact: v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: artDigest, ArtifactType: signatureType},
	}
}

func TestReferrersAPI(t *testing.T) {
	s := pushSignedImage(t)
	s.srv.Reset()
	idx, err := remote.Referrers(s.tag.Context().Digest(s.image.String()), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]v1.Descriptor{s.artifact}, m.Manifests); diff != "" {
		t.Errorf("referrers (-want +got):\n%s", diff)
	}
	// One referrers request answered it: the API, not the tag fallback.
	if diff := cmp.Diff(map[string]int{registry.KindPing: 1, registry.KindReferrers: 1}, s.srv.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestRequestsCountedByKind(t *testing.T) {
	s := pushSignedImage(t)
	opt := remote.WithContext(t.Context())
	for _, tc := range []struct {
		kind string
		call func() error
	}{
		{registry.KindManifestHead, func() error { _, err := remote.Head(s.tag, opt); return err }},
		{registry.KindManifestGet, func() error { _, err := remote.Get(s.tag, opt); return err }},
		{registry.KindTagList, func() error { _, err := remote.List(s.tag.Context(), opt); return err }},
		{registry.KindBlobGet, func() error {
			l, err := remote.Layer(s.tag.Context().Digest(s.layer.String()), opt)
			if err != nil {
				return err
			}
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		}},
		{registry.KindOther, func() error { _, err := remote.Catalog(t.Context(), s.tag.Context().Registry); return err }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			s.srv.Reset()
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]int{registry.KindPing: 1, tc.kind: 1}, s.srv.Requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConcurrentRequestsAllCounted backs claims such as "100 concurrent
// verifications make one fetch": the counter itself must not lose any.
func TestConcurrentRequestsAllCounted(t *testing.T) {
	s := pushSignedImage(t)
	s.srv.Reset()
	url := s.url + "/v2/app/manifests/" + s.image.String()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if diff := cmp.Diff(map[string]int{registry.KindManifestGet: 100}, s.srv.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestHooksOverHTTP covers what a test in another process uses.
func TestHooksOverHTTP(t *testing.T) {
	s := pushSignedImage(t)
	s.srv.Reset()
	if _, err := remote.Head(s.tag, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	get := func() map[string]int {
		t.Helper()
		resp, err := http.Get(s.url + "/_signet/requests")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]int
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Reading the counts does not count.
	for range 2 {
		if diff := cmp.Diff(map[string]int{registry.KindPing: 1, registry.KindManifestHead: 1}, get()); diff != "" {
			t.Errorf("GET /_signet/requests (-want +got):\n%s", diff)
		}
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/_signet/requests/reset", http.StatusMethodNotAllowed},
		{http.MethodPost, "/_signet/requests", http.StatusMethodNotAllowed},
		{http.MethodGet, "/_signet/nothing", http.StatusNotFound},
		{http.MethodPost, "/_signet/requests/reset", http.StatusNoContent},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, s.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	if got := get(); len(got) != 0 {
		t.Errorf("after reset: %v, want no requests", got)
	}
}
