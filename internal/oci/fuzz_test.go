package oci_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/test/servers/registry"
)

const notationType = "application/vnd.cncf.notary.signature"

// realIndex is an image index as registries list referrers: a Notation
// signature, a cosign bundle and a manifest of another type.
func realIndex(tb testing.TB) []byte {
	tb.Helper()
	b, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: notationType, Digest: digest.FromString("sig"), Size: 721,
				Annotations: map[string]string{"io.cncf.notary.x509chain.thumbprint#S256": `["ab12"]`}},
			{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", Digest: digest.FromString("bundle"), Size: 650},
			{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/spdx+json", Digest: digest.FromString("sbom"), Size: 400},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzReferrers serves fuzzed image indexes from a registry on 127.0.0.1,
// as the referrers API's answer and as the referrers tag schema's index,
// and lists a subject's Notation referrers through oci.Referrers (the path
// the AWS Signer verifier reads). Properties: no panic; every descriptor
// listed is listed once and has the requested artifact type (oras-go filters the API's answer when the registry did
// not); a failure is worded by Describe in one clipped, valid
// UTF-8 sentence naming the registry.
func FuzzReferrers(f *testing.F) {
	subject := registry.Digest([]byte("subject"))
	listed := realIndex(f)
	empty := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	f.Add(listed, empty)
	f.Add(empty, listed)
	f.Add(listed, listed)
	f.Add([]byte(`{"manifests":null}`), []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
	f.Add([]byte("not json"), []byte{})

	reg := registry.NewStatic(nil)
	srv := httptest.NewServer(reg)
	f.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	repo, err := name.NewRepository(host + "/fuzz/app")
	if err != nil {
		f.Fatal(err)
	}
	client := oci.New(oci.Options{})
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(subject), Size: 7}

	f.Fuzz(func(t *testing.T, apiIndex, tagIndex []byte) {
		c := registry.NewContent()
		c.Referrers[subject] = apiIndex
		if len(tagIndex) > 0 {
			c.AddManifest(ocispec.MediaTypeImageIndex, tagIndex, oci.ReferrersTag(desc.Digest))
		}
		reg.Set(c)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		seen := map[digest.Digest]bool{}
		err := oci.Referrers(ctx, client.OrasRepository(repo, nil), desc, notationType, oci.DefaultLimits, func(ds []ocispec.Descriptor) error {
			for _, d := range ds {
				if seen[d.Digest] {
					t.Fatalf("%s listed twice", d.Digest)
				}
				seen[d.Digest] = true
				if d.ArtifactType != notationType {
					t.Fatalf("%s of artifact type %q listed", d.Digest, d.ArtifactType)
				}
			}
			return nil
		})
		if err != nil {
			msg := oci.Describe(err, host, repo.String(), "the image's referrers")
			if !strings.HasPrefix(msg, "registry "+host+" ") || !utf8.ValidString(msg) || len(msg) > 600 {
				t.Fatalf("Describe = %q", msg)
			}
			return
		}
	})
}
