package cosign

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ggcrstatic "github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/attest"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
)

// legacySig is one simple-signing layer: payload and base64 signature.
type legacySig struct {
	payload []byte
	b64     string
}

// readLegacy reads the signatures under d's .sig tag.
func (f *fixture) readLegacy(d name.Digest) []legacySig {
	f.t.Helper()
	img, err := remote.Image(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig"))
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		f.t.Fatal(err)
	}
	var out []legacySig
	for _, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, legacySig{payload: readLayer(f.t, l), b64: desc.Annotations[static.SignatureAnnotationKey]})
	}
	return out
}

// writeLegacy replaces d's .sig tag with a manifest holding sigs, as
// cosign lays it out.
func (f *fixture) writeLegacy(d name.Digest, sigs ...legacySig) {
	f.t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, s := range sigs {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:       ggcrstatic.NewLayer(s.payload, ctypes.SimpleSigningMediaType),
			Annotations: map[string]string{static.SignatureAnnotationKey: s.b64},
		})
		if err != nil {
			f.t.Fatal(err)
		}
	}
	if err := remote.Write(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1)+".sig"), img); err != nil {
		f.t.Fatal(err)
	}
}

// readBundle returns the bundle JSON cosign attached to d.
func (f *fixture) readBundle(d name.Digest) []byte {
	f.t.Helper()
	idx, err := remote.Referrers(d)
	if err != nil {
		f.t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		img, err := remote.Image(d.Context().Digest(desc.Digest.String()))
		if err != nil {
			f.t.Fatal(err)
		}
		ls, err := img.Layers()
		if err != nil {
			f.t.Fatal(err)
		}
		if mt, _ := ls[0].MediaType(); strings.HasPrefix(string(mt), bundleMediaTypePrefix) {
			return readLayer(f.t, ls[0])
		}
	}
	f.t.Fatalf("no bundle referrer on %s", d)
	return nil
}

// attachBundle attaches bundle JSON to d as cosign does (a referrer; the
// tag schema where the registry has no referrers API) and returns the
// referrer manifest's digest.
func (f *fixture) attachBundle(d name.Digest, bundle []byte) string {
	f.t.Helper()
	layer := ggcrstatic.NewLayer(bundle, "application/vnd.dev.sigstore.bundle.v0.3+json")
	if err := ociremote.WriteReferrer(d, "application/vnd.dev.sigstore.bundle.v0.3+json", []v1.Layer{layer}, nil); err != nil {
		f.t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		f.t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	for _, desc := range im.Manifests {
		return desc.Digest.String()
	}
	f.t.Fatal("attached bundle not listed")
	return ""
}

func readLayer(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editStatement rewrites the in-toto statement inside a bundle's DSSE
// envelope, keeping the signature: what an attacker re-pointing a bundle
// at another image would do.
func editStatement(t *testing.T, bundle []byte, edit func(st map[string]any)) []byte {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	env := b["dsseEnvelope"].(map[string]any)
	raw, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	edit(st)
	raw, _ = json.Marshal(st)
	env["payload"] = base64.StdEncoding.EncodeToString(raw)
	out, _ := json.Marshal(b)
	return out
}

func TestReplayedSignatureIsDigestMismatch(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.alias(f.createKey("us-east-1", kmstypes.KeySpecEccNistP256))
	v := f.verifierFor(uri)
	for regName, reg := range f.registries() {
		t.Run(regName+"/legacy", func(t *testing.T) {
			signed, target := f.pushImage(reg), f.pushImage(reg)
			f.sign(signed, uri, formatLegacy)
			f.writeLegacy(target, f.readLegacy(signed)...)
			expect(t, verifyImage(t, v, target), policy.ReasonDigestMismatch,
				"signature in "+sigTag(target)+" was made for "+signed.DigestStr())
		})
		t.Run(regName+"/bundle", func(t *testing.T) {
			signed, target := f.pushImage(reg), f.pushImage(reg)
			f.sign(signed, uri, formatBundle)
			ref := f.attachBundle(target, f.readBundle(signed))
			expect(t, verifyImage(t, v, target), policy.ReasonDigestMismatch,
				"signature in referrer "+ref+" was made for "+signed.DigestStr())
		})
	}
}

func TestTamperedPayloadIsInvalid(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP384)
	v := f.verifierFor(uri)
	reg := f.stack.Registry

	t.Run("legacy", func(t *testing.T) {
		signed, target := f.pushImage(reg), f.pushImage(reg)
		f.sign(signed, uri, formatLegacy)
		sig := f.readLegacy(signed)[0]
		// Re-point the signed payload at the target image.
		sig.payload = []byte(strings.Replace(string(sig.payload), signed.DigestStr(), target.DigestStr(), 1))
		f.writeLegacy(target, sig)
		expect(t, verifyImage(t, v, target), policy.ReasonInvalidSignature, "signature in "+sigTag(target)+" does not verify with the key")
	})
	t.Run("bundle", func(t *testing.T) {
		signed, target := f.pushImage(reg), f.pushImage(reg)
		f.sign(signed, uri, formatBundle)
		tampered := editStatement(t, f.readBundle(signed), func(st map[string]any) {
			st["subject"] = []any{map[string]any{"digest": map[string]any{"sha256": strings.TrimPrefix(target.DigestStr(), "sha256:")}}}
		})
		ref := f.attachBundle(target, tampered)
		expect(t, verifyImage(t, v, target), policy.ReasonInvalidSignature, "signature in referrer "+ref+" does not verify with the key")
	})
	t.Run("legacy-corrupt-base64", func(t *testing.T) {
		d := f.pushImage(reg)
		f.sign(d, uri, formatLegacy)
		sig := f.readLegacy(d)[0]
		sig.b64 = "%%%not base64%%%"
		f.writeLegacy(d, sig)
		expect(t, verifyImage(t, v, d), policy.ReasonInvalidSignature, "signature in "+sigTag(d)+" is not valid base64")
	})
	t.Run("bundle-corrupt-base64", func(t *testing.T) {
		d := f.pushImage(reg)
		f.sign(d, uri, formatBundle)
		var b map[string]any
		_ = json.Unmarshal(f.readBundle(d), &b)
		target := f.pushImage(reg)
		b["dsseEnvelope"].(map[string]any)["signatures"].([]any)[0].(map[string]any)["sig"] = "%%%not base64%%%"
		raw, _ := json.Marshal(b)
		ref := f.attachBundle(target, raw)
		expect(t, verifyImage(t, v, target), policy.ReasonInvalidSignature, "bundle in referrer "+ref+" is not a valid Sigstore bundle")
	})
}

// An attestation (cosign attest --new-bundle-format) made with the key
// binds the image too, but says something else than "approved".
func TestAttestationIsNotASignature(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	v := f.verifierFor(uri)
	d := f.pushImage(f.stack.ReferrersRegistry)
	predicate := filepath.Join(t.TempDir(), "predicate.json")
	if err := os.WriteFile(predicate, []byte(`{"buildDefinition":{"buildType":"https://example.com/build"},"runDetails":{"builder":{"id":"https://example.com/ci"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := attest.AttestCommand{
		KeyOpts:       options.KeyOpts{KeyRef: uri, NewBundleFormat: true, SkipConfirmation: true},
		PredicatePath: predicate, PredicateType: "slsaprovenance1", Timeout: time.Minute, RekorEntryType: "dsse",
	}
	if err := cmd.Exec(t.Context(), d.String()); err != nil {
		t.Fatal(err)
	}
	got := verifyImage(t, v, d)
	if got.Reason != policy.ReasonInvalidSignature || !strings.HasPrefix(got.Cause, "bundle in referrer sha256:") ||
		!strings.HasSuffix(got.Cause, " is an attestation (https://slsa.dev/provenance/v1), not a cosign signature") {
		t.Fatalf("%s %q", got.Reason, got.Cause)
	}
	// Signed as well: the signature admits.
	f.sign(d, uri, formatBundle)
	if got := verifyImage(t, v, d); got.Reason != policy.ReasonVerified {
		t.Fatalf("%s %q", got.Reason, got.Cause)
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	reg := f.stack.Registry
	limited := func(l oci.Limits) *Verifier {
		keys := f.keys
		v, err := NewKMS(t.Context(), keys, uri, Options{Registry: oci.New(oci.Options{Limits: l})})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("manifest", func(t *testing.T) {
		l := oci.DefaultLimits
		l.MaxResponseBytes = 16 << 10
		d := f.pushImage(reg)
		f.sign(d, uri, formatLegacy)
		// A valid signature, in a manifest bloated past the limit by a
		// 20 KiB annotation.
		f.writeLegacy(d, f.readLegacy(d)[0], legacySig{payload: []byte("{}"), b64: strings.Repeat("A", 20<<10)})
		tag := strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig"
		expect(t, verifyImage(t, limited(l), d), policy.ReasonLimitExceeded, fmt.Sprintf(
			"reading %s: registry exceeded Signet's limit on response body (16384) at http://%s/v2/%s/manifests/%s", sigTag(d), reg, f.repo, tag))
	})
	t.Run("payload", func(t *testing.T) {
		l := oci.DefaultLimits
		l.MaxPayloadBytes = 1024
		d := f.pushImage(reg)
		payload := []byte(strings.Repeat(" ", 2048))
		f.writeLegacy(d, legacySig{payload: payload, b64: "AAAA"})
		h, _, _ := v1.SHA256(strings.NewReader(string(payload)))
		expect(t, verifyImage(t, limited(l), d), policy.ReasonLimitExceeded, fmt.Sprintf(
			"reading %s: registry exceeded Signet's limit on signature payload size (1024) at %s/%s@%s (2048 bytes)", sigTag(d), reg, f.repo, h))
	})
	t.Run("signatures", func(t *testing.T) {
		l := oci.DefaultLimits
		l.MaxSignatures = 3
		d := f.pushImage(reg)
		f.sign(d, uri, formatLegacy)
		valid := f.readLegacy(d)[0]
		junk := legacySig{payload: valid.payload, b64: base64.StdEncoding.EncodeToString([]byte("not a signature"))}
		// Newest last: the valid signature is examined first and admits.
		f.writeLegacy(d, junk, junk, junk, valid)
		if got := verifyImage(t, limited(l), d); got.Reason != policy.ReasonVerified {
			t.Fatalf("%s %q", got.Reason, got.Cause)
		}
		// Buried under more junk than the limit: denied, and said why.
		f.writeLegacy(d, valid, junk, junk, junk)
		expect(t, verifyImage(t, limited(l), d), policy.ReasonLimitExceeded,
			"more than 3 signatures to examine and none of the first 3 verifies (Signet's limit on signatures examined per image)")
	})
}
