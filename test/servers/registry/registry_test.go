package registry_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/test/servers/registry"
)

func TestReferrersAndRequestCounts(t *testing.T) {
	srv := registry.New()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	host := strings.TrimPrefix(hs.URL, "http://")

	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	// An artifact whose manifest names the image as its subject.
	// (Subject last: ConfigMediaType rebuilds the manifest without it.)
	artifact := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.signature")
	artifact = mutate.Subject(artifact, *desc).(v1.Image)
	artDigest, err := artifact.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref.Context().Digest(artDigest.String()), artifact); err != nil {
		t.Fatal(err)
	}

	srv.Reset()
	idx, err := remote.Referrers(ref.Context().Digest(digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != artDigest {
		t.Fatalf("referrers = %+v, want the artifact %s", m.Manifests, artDigest)
	}
	got := srv.Requests()
	if got[registry.KindPing] != 1 || got[registry.KindReferrers] != 1 || len(got) != 2 {
		t.Fatalf("requests = %v, want one ping and one referrers request", got)
	}
}
