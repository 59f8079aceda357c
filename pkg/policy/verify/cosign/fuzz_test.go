package cosign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/test/servers/registry"
)

// signed is what the cosign library signed with the fuzz key: for one
// image, its simple-signing payload and signature and its Sigstore bundle.
type signed struct {
	payload []byte
	b64     string
	bundle  []byte
}

// signWithCosign pushes a random image to a registry on 127.0.0.1 and signs
// it with keyFile through the cosign library's `cosign sign` (SignCmd), in
// the legacy .sig-tag format and as a Sigstore bundle; it returns the
// image's manifest and what was signed.
func signWithCosign(tb testing.TB, keyFile string) (manifest []byte, mediaType string, d v1.Hash, s signed) {
	tb.Helper()
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	img, err := random.Image(256, 1)
	if err != nil {
		tb.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/fuzz/app:v1")
	if err != nil {
		tb.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		tb.Fatal(err)
	}
	if d, err = img.Digest(); err != nil {
		tb.Fatal(err)
	}
	dref := ref.Context().Digest(d.String())
	for _, bundle := range []bool{false, true} {
		so := options.SignOptions{Upload: true, TlogUpload: false, SkipConfirmation: true, NewBundleFormat: bundle}
		ko := options.KeyOpts{KeyRef: keyFile, SkipConfirmation: true, PassFunc: func(bool) ([]byte, error) { return nil, nil }}
		if err := sign.SignCmd(&options.RootOptions{Timeout: time.Minute}, ko, so, []string{dref.String()}); err != nil {
			tb.Fatalf("cosign sign: %v", err)
		}
	}
	sigImg, err := remote.Image(ref.Context().Tag(sigTagName(d)))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := sigImg.Manifest()
	if err != nil {
		tb.Fatal(err)
	}
	s.payload = layerBytes(tb, sigImg, m.Layers[0].Digest)
	s.b64 = m.Layers[0].Annotations[static.SignatureAnnotationKey]
	idx, err := remote.Referrers(dref)
	if err != nil {
		tb.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		tb.Fatalf("referrers of the signed image: %v %v", im, err)
	}
	bundleImg, err := remote.Image(ref.Context().Digest(im.Manifests[0].Digest.String()))
	if err != nil {
		tb.Fatal(err)
	}
	bm, err := bundleImg.Manifest()
	if err != nil {
		tb.Fatal(err)
	}
	s.bundle = layerBytes(tb, bundleImg, bm.Layers[0].Digest)
	raw, err := remote.Get(dref)
	if err != nil {
		tb.Fatal(err)
	}
	return raw.Manifest, string(raw.MediaType), d, s
}

func layerBytes(tb testing.TB, img v1.Image, h v1.Hash) []byte {
	tb.Helper()
	l, err := img.LayerByDigest(h)
	if err != nil {
		tb.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// dssePayload is the statement a bundle's DSSE envelope signs, as cosign
// reads it; nil when b is no bundle or holds no envelope.
func dssePayload(b []byte) []byte {
	bundle := &sgbundle.Bundle{}
	if bundle.UnmarshalJSON(b) != nil || bundle.GetDsseEnvelope() == nil {
		return nil
	}
	return bundle.GetDsseEnvelope().GetPayload()
}

// FuzzVerify serves fuzzed signatures for one image from a registry on
// 127.0.0.1 (a simple-signing layer under the .sig tag with its signature
// annotation, and a Sigstore bundle as a referrer) and verifies the image
// through the Verifier's own entry point with a fixed key. Seeds are real
// signatures and bundles the cosign library made with that key, for this
// image and for another. Properties: no panic; an answer within the
// deadline with a cause; and nothing verifies that the key did not sign:
// a verified .sig tag carries a payload the key signed, a verified bundle
// a statement the key signed.
func FuzzVerify(f *testing.F) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	keyFile, pub := cosignKeyPair(f, priv)
	manifest, mediaType, d, mine := signWithCosign(f, keyFile)
	_, _, _, other := signWithCosign(f, keyFile) // another image's signatures: replays
	signedPayloads := map[string]bool{string(mine.payload): true, string(other.payload): true}
	signedStatements := map[string]bool{string(dssePayload(mine.bundle)): true, string(dssePayload(other.bundle)): true}
	if len(signedStatements) != 2 || signedStatements[""] {
		f.Fatal("cosign wrote bundles without DSSE statements")
	}

	f.Add(mine.payload, mine.b64, []byte(nil))
	f.Add([]byte(nil), "", mine.bundle)
	f.Add(other.payload, other.b64, other.bundle)
	f.Add(mine.payload, other.b64, mine.bundle)
	f.Add(other.payload, mine.b64, []byte(strings.Replace(string(mine.bundle), `"dsseEnvelope"`, `"messageSignature"`, 1)))
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"`+d.String()+`"},"type":"cosign container image signature"},"optional":null}`), "MEUCIQ==", []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))

	reg := registry.NewStatic(nil)
	srv := httptest.NewServer(reg)
	f.Cleanup(srv.Close)
	ref, err := name.NewDigest(strings.TrimPrefix(srv.URL, "http://") + "/fuzz/app@" + d.String())
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewPEM("fuzz key", pub, Options{Registry: oci.New(oci.Options{})})
	if err != nil {
		f.Fatal(err)
	}

	check := func(t testing.TB, payload []byte, sig string, bundle []byte) policy.Result {
		c := registry.NewContent()
		c.Manifests[d.String()] = registry.Manifest{MediaType: mediaType, Body: manifest}
		config := c.AddBlob([]byte("{}"))
		if len(payload) > 0 {
			layer := c.AddBlob(payload)
			c.AddManifest("application/vnd.oci.image.manifest.v1+json", mustJSON(t, map[string]any{
				"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
				"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
				"layers": []any{map[string]any{"mediaType": ctypes.SimpleSigningMediaType, "digest": layer, "size": len(payload),
					"annotations": map[string]string{static.SignatureAnnotationKey: sig}}},
			}), sigTagName(d))
		}
		if len(bundle) > 0 {
			layer := c.AddBlob(bundle)
			const bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
			m := mustJSON(t, map[string]any{
				"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": bundleType,
				"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
				"layers":  []any{map[string]any{"mediaType": bundleType, "digest": layer, "size": len(bundle)}},
				"subject": map[string]any{"mediaType": mediaType, "digest": d.String(), "size": len(manifest)},
			})
			md := c.AddManifest("application/vnd.oci.image.manifest.v1+json", m)
			c.Referrers[d.String()] = mustJSON(t, map[string]any{
				"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
				"manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m), "artifactType": bundleType}},
			})
		}
		reg.Set(c)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.Verify(ctx, policy.Image{Ref: ref})
	}
	// The seeds are what they claim: the fuzz starts from signatures that verify.
	for _, tc := range []struct {
		payload []byte
		b64     string
		bundle  []byte
		want    policy.Reason
	}{
		{mine.payload, mine.b64, nil, policy.ReasonVerified},
		{nil, "", mine.bundle, policy.ReasonVerified},
		{other.payload, other.b64, nil, policy.ReasonDigestMismatch},
		{nil, "", other.bundle, policy.ReasonDigestMismatch},
	} {
		if got := check(f, tc.payload, tc.b64, tc.bundle); got.Reason != tc.want {
			f.Fatalf("seed: got %s %q, want %s", got.Reason, got.Cause, tc.want)
		}
	}

	f.Fuzz(func(t *testing.T, payload []byte, sig string, bundle []byte) {
		res := check(t, payload, sig, bundle)
		if res.Cause == "" && res.Reason != policy.ReasonVerified {
			t.Fatalf("%s without a cause", res.Reason)
		}
		if res.Reason == policy.ReasonRegistryUnavailable {
			t.Fatalf("the registry answered everything, yet: %s", res.Cause)
		}
		if !res.Verified() {
			return
		}
		switch {
		case strings.HasPrefix(res.Cause, "signature in the "+sigTagName(d)+" tag"):
			if !signedPayloads[string(payload)] {
				t.Fatalf("a payload the key never signed verified: %q (%s)", payload, res.Cause)
			}
			var ss struct {
				Critical struct {
					Image struct {
						DockerManifestDigest string `json:"docker-manifest-digest"`
					} `json:"image"`
				} `json:"critical"`
			}
			if err := json.Unmarshal(payload, &ss); err != nil || ss.Critical.Image.DockerManifestDigest != d.String() {
				t.Fatalf("verified a payload signed for %q: %v", ss.Critical.Image.DockerManifestDigest, err)
			}
		case strings.HasPrefix(res.Cause, "signature in referrer "):
			if st := dssePayload(bundle); st == nil || !signedStatements[string(st)] || string(st) == string(dssePayload(other.bundle)) {
				t.Fatalf("a bundle the key never signed for this image verified: %q (%s)", bundle, res.Cause)
			}
		default:
			t.Fatalf("verified with cause %q", res.Cause)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
