package awssigner_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/notaryproject/notation-core-go/signature"
	"github.com/notaryproject/notation-go/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	staticregistry "github.com/signet-dev/signet/test/servers/registry"
	"github.com/signet-dev/signet/test/signerpki"
)

// signedContent is what an envelope signs (its payload) and by whom (the
// leaf certificate), or "" when env does not parse as mediaType.
func signedContent(mediaType string, env []byte) string {
	e, err := signature.ParseEnvelope(mediaType, env)
	if err != nil {
		return ""
	}
	c, err := e.Content()
	if err != nil || len(c.SignerInfo.CertificateChain) == 0 {
		return ""
	}
	return string(c.Payload.Content) + "\x00" + string(c.SignerInfo.CertificateChain[0].Raw)
}

// FuzzVerify serves a fuzzed Notation envelope, JWS or COSE, as the one
// signature of an image on a registry on 127.0.0.1 (the referrers API) and
// verifies the image through the AWS Signer verifier trusting one signing
// profile under a test PKI of AWS Signer's shape. Seeds are envelopes that
// PKI signed with AWS Signer's attributes: for this image by the trusted
// profile, by another profile, for another image, and by a foreign CA.
// Properties: no panic; an answer within the deadline with a cause; and
// nothing verifies but a payload the trusted leaf signed for this image,
// with the trusted profile's version as the signer.
func FuzzVerify(f *testing.F) {
	w := newStaticWorld(f)
	trusted, foreign, subject := w.trusted, w.foreign, w.subject
	another := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("another image"), Size: 300}
	envelope := func(chain *signerpki.Chain, target ocispec.Descriptor, mediaType, version string) []byte {
		env, err := chain.Envelope(target, mediaType, attrs(version))
		if err != nil {
			f.Fatal(err)
		}
		return env
	}
	signedByTrusted := map[string]bool{}
	for _, mt := range []string{jwsType, coseType} {
		good := envelope(trusted, subject, mt, versionARN)
		signedByTrusted[signedContent(mt, good)] = true
		cose := mt == coseType
		f.Add(good, cose)
		f.Add(envelope(trusted, subject, mt, otherVersionARN), cose)
		f.Add(envelope(trusted, another, mt, versionARN), cose)
		f.Add(envelope(foreign, subject, mt, versionARN), cose)
	}
	f.Add([]byte(`{"payload":"","protected":"","header":{"x5c":[]},"signature":""}`), false)

	v, err := awssigner.New(awssigner.Options{Profiles: []string{profileARN}, Revocation: awssigner.RevocationSkip, Roots: w.roots, Registry: oci.New(oci.Options{})})
	if err != nil {
		f.Fatal(err)
	}
	check := func(tb testing.TB, env []byte, mediaType string) policy.Result {
		w.serve(tb, env, mediaType)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return v.Verify(ctx, policy.Image{Ref: w.ref})
	}
	// The seeds are what they claim: the fuzz starts from a signature that verifies.
	for _, mt := range []string{jwsType, coseType} {
		if got := check(f, envelope(trusted, subject, mt, versionARN), mt); !got.Verified() || got.Signer != versionARN {
			f.Fatalf("seed %s: %s %q", mt, got.Reason, got.Cause)
		}
		if got := check(f, envelope(foreign, subject, mt, versionARN), mt); got.Verified() {
			f.Fatalf("seed %s by a foreign CA verified", mt)
		}
	}

	f.Fuzz(func(t *testing.T, env []byte, cose bool) {
		mt := jwsType
		if cose {
			mt = coseType
		}
		res := check(t, env, mt)
		if !res.Verified() {
			if res.Cause == "" {
				t.Fatalf("%s without a cause", res.Reason)
			}
			return
		}
		if res.Signer != versionARN || !signedByTrusted[signedContent(mt, env)] {
			t.Fatalf("an envelope the trusted profile never signed for this image verified (signer %q): %q", res.Signer, env)
		}
	})
}

// staticWorld is an image on a static registry on 127.0.0.1 whose one
// Notation signature is whatever serve was last given, and a test PKI of
// AWS Signer's shape whose root is the verifier's only trust anchor.
type staticWorld struct {
	roots            *awssigner.Roots
	trusted, foreign *signerpki.Chain
	manifest         []byte
	subject          ocispec.Descriptor
	reg              *staticregistry.Static
	ref              name.Digest
}

func newStaticWorld(tb testing.TB) *staticWorld {
	tb.Helper()
	root := newRoot(tb, "Signet Test Signer Code Signing Root CA G1")
	w := &staticWorld{
		trusted:  newLeaf(tb, newIntermediate(tb, root, "Signet Test Signer us-west-2 Code Signing CA G1"), signerpki.Validity{}),
		foreign:  newLeaf(tb, newIntermediate(tb, newRoot(tb, "Foreign Root CA"), "Foreign Code Signing CA"), signerpki.Validity{}),
		manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`),
		reg:      staticregistry.NewStatic(nil),
	}
	rootsFile := filepath.Join(tb.TempDir(), "roots.pem")
	must(tb, os.WriteFile(rootsFile, root.PEM(), 0o600))
	var err error
	w.roots, err = awssigner.LoadRoots(rootsFile)
	must(tb, err)
	w.subject = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(w.manifest), Size: int64(len(w.manifest))}
	srv := httptest.NewServer(w.reg)
	tb.Cleanup(srv.Close)
	w.ref, err = name.NewDigest(strings.TrimPrefix(srv.URL, "http://") + "/static/app@" + w.subject.Digest.String())
	must(tb, err)
	return w
}

// serve makes env (of mediaType) the image's one signature, listed by the
// referrers API.
func (w *staticWorld) serve(tb testing.TB, env []byte, mediaType string) {
	tb.Helper()
	c := staticregistry.NewContent()
	c.Manifests[w.subject.Digest.String()] = staticregistry.Manifest{MediaType: w.subject.MediaType, Body: w.manifest}
	config := c.AddBlob([]byte("{}"))
	layer := c.AddBlob(env)
	m, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "artifactType": registry.ArtifactTypeNotation,
		"config":  map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
		"layers":  []any{map[string]any{"mediaType": mediaType, "digest": layer, "size": len(env)}},
		"subject": w.subject,
	})
	must(tb, err)
	md := c.AddManifest(ocispec.MediaTypeImageManifest, m)
	c.Referrers[w.subject.Digest.String()], err = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex,
		"manifests": []any{map[string]any{"mediaType": ocispec.MediaTypeImageManifest, "digest": md, "size": len(m), "artifactType": registry.ArtifactTypeNotation}},
	})
	must(tb, err)
	w.reg.Set(c)
}
