package cosign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/signet-dev/signet/pkg/policy"
)

// registries are the stack's two registries: distribution without the
// referrers API (bundles land under the referrers tag schema) and
// go-containerregistry's with it.
func (f *fixture) registries() map[string]string {
	return map[string]string{"distribution": f.stack.Registry, "referrers-api": f.stack.ReferrersRegistry}
}

// verifiedCause is the cause of a verified result for a format.
func verifiedCause(t *testing.T, got policy.Result, format signFormat, sigTagWhere string) {
	t.Helper()
	if got.Reason != policy.ReasonVerified {
		t.Fatalf("result = %s %q, want Verified", got.Reason, got.Cause)
	}
	if format == formatLegacy {
		if want := "signature in " + sigTagWhere + " verified"; got.Cause != want {
			t.Fatalf("cause = %q, want %q", got.Cause, want)
		}
		return
	}
	if !strings.HasPrefix(got.Cause, "signature in referrer sha256:") || !strings.HasSuffix(got.Cause, " verified") {
		t.Fatalf("cause = %q, want the referrer it was found in", got.Cause)
	}
}

func TestVerifyKMSKeysEveryFormatBothRegistries(t *testing.T) {
	f := newFixture(t)
	for _, spec := range []kmstypes.KeySpec{kmstypes.KeySpecEccNistP256, kmstypes.KeySpecEccNistP384, kmstypes.KeySpecRsa2048} {
		key := f.createKey("us-east-1", spec)
		uri := "awskms:///" + f.alias(key)
		v := f.verifierFor(uri)
		for regName, reg := range f.registries() {
			for _, format := range []signFormat{formatLegacy, formatReferrers, formatBundle} {
				t.Run(string(spec)+"/"+regName+"/"+string(format), func(t *testing.T) {
					d := f.pushImage(reg)
					f.sign(d, uri, format)
					got := verifyImage(t, v, d)
					verifiedCause(t, got, format, sigTag(d))
					if !strings.HasPrefix(got.Signer, key+" (SHA256:") {
						t.Fatalf("signer = %q, want the key ARN and fingerprint", got.Signer)
					}
				})
			}
		}
	}
}

func TestVerifyEveryKMSURIForm(t *testing.T) {
	f := newFixture(t)
	key := f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	aliasName := f.alias(key)
	id := key[strings.LastIndex(key, "/")+1:]
	d := f.pushImage(f.stack.Registry)
	f.sign(d, "awskms:///"+aliasName, formatLegacy)

	for _, uri := range []string{
		"awskms:///" + id,
		"awskms:///" + aliasName,
		"awskms:///" + key,
		"awskms:///arn:aws:kms:us-east-1:123456789012:" + aliasName,
	} {
		t.Run(uri, func(t *testing.T) {
			verifiedCause(t, verifyImage(t, f.verifierFor(uri), d), formatLegacy, sigTag(d))
		})
	}
}

// A cross-account key ARN in another region is read in the ARN's region,
// whatever AWS_REGION says.
func TestVerifyCrossAccountARNInItsRegion(t *testing.T) {
	f := newFixture(t)
	key := f.createKey("eu-west-1", kmstypes.KeySpecEccNistP256)
	if !strings.HasPrefix(key, "arn:aws:kms:eu-west-1:210987654321:key/") {
		t.Fatalf("key ARN %s", key)
	}
	d := f.pushImage(f.stack.Registry)
	// cosign's signer uses the configured region, so sign "from" eu-west-1.
	t.Setenv("AWS_REGION", "eu-west-1")
	f.sign(d, "awskms:///"+key, formatLegacy)
	t.Setenv("AWS_REGION", "us-east-1")

	v := f.verifierFor("awskms:///" + key)
	if got := f.lastKMSRegion(); got != "eu-west-1" {
		t.Fatalf("GetPublicKey went to %s, want eu-west-1 (the ARN's region)", got)
	}
	verifiedCause(t, verifyImage(t, v, d), formatLegacy, sigTag(d))
}

func TestVerifyPEMKeys(t *testing.T) {
	f := newFixture(t)
	for name, gen := range map[string]func() (crypto.Signer, error){
		"ecdsa-p256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"ecdsa-p384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"ecdsa-p521": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"rsa-2048":   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
		"ed25519": func() (crypto.Signer, error) {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			return k, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			priv, err := gen()
			if err != nil {
				t.Fatal(err)
			}
			keyFile, pubPEM := cosignKeyPair(t, priv)
			v, err := NewPEM("", pubPEM, Options{Registry: f.reg})
			if err != nil {
				t.Fatal(err)
			}
			for _, format := range []signFormat{formatLegacy, formatBundle} {
				d := f.pushImage(f.stack.ReferrersRegistry)
				f.sign(d, keyFile, format)
				got := verifyImage(t, v, d)
				verifiedCause(t, got, format, sigTag(d))
				if !strings.HasPrefix(v.Describe(), "public key SHA256:") || got.Signer != v.Describe() {
					t.Fatalf("describe %q, signer %q", v.Describe(), got.Signer)
				}
			}
		})
	}
}

// cosignKeyPair imports priv as `cosign import-key-pair` does and returns
// the encrypted private key's file and the PEM public key.
func cosignKeyPair(t testing.TB, priv crypto.Signer) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "import.key")
	if err := os.WriteFile(in, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	kb, err := cosign.ImportKeyPair(in, func(bool) ([]byte, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cosign.key")
	if err := os.WriteFile(out, kb.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return out, kb.PublicBytes
}

func TestVerifyWrongKeyAndUnsigned(t *testing.T) {
	f := newFixture(t)
	signing := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	other := f.verifierFor("awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256))
	for regName, reg := range f.registries() {
		t.Run(regName, func(t *testing.T) {
			d := f.pushImage(reg)
			got := verifyImage(t, other, d)
			expect(t, got, policy.ReasonNoSignature, "no signature found")
			if want := "image " + d.String() + ": authority " + other.Describe() + ": no signature found"; got.Message() != want {
				t.Fatalf("message %q, want %q", got.Message(), want)
			}

			f.sign(d, signing, formatLegacy)
			expect(t, verifyImage(t, other, d), policy.ReasonInvalidSignature, "signature in "+sigTag(d)+" does not verify with the key")

			f.sign(d, signing, formatBundle)
			got = verifyImage(t, other, d)
			if got.Reason != policy.ReasonInvalidSignature || !strings.HasPrefix(got.Cause, "2 signatures found, none valid: signature in ") {
				t.Fatalf("result = %s %q", got.Reason, got.Cause)
			}
		})
	}
}

func TestVerifyImageNotFound(t *testing.T) {
	f := newFixture(t)
	v := f.verifierFor("awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256))
	d := f.pushImage(f.stack.Registry).Context().Digest("sha256:" + strings.Repeat("ab", 32))
	expect(t, verifyImage(t, v, d), policy.ReasonNoSignature, "image not found: the registry has no manifest sha256:"+strings.Repeat("ab", 32))
}

func TestIdentityFollowsTheKeyNotTheURI(t *testing.T) {
	f := newFixture(t)
	key := f.createKey("us-east-1", kmstypes.KeySpecEccNistP384)
	byARN, byAlias := f.verifierFor("awskms:///"+key), f.verifierFor("awskms:///"+f.alias(key))
	if byARN.Identity() != byAlias.Identity() {
		t.Fatalf("identities differ for one key:\n%s\n%s", byARN.Identity(), byAlias.Identity())
	}
	if want := "cosign;key=SHA256:"; !strings.HasPrefix(byARN.Identity(), want) || !strings.HasSuffix(byARN.Identity(), ";schemes=ECDSA_SHA_384;tlog=None") {
		t.Fatalf("identity %q", byARN.Identity())
	}
	other := f.verifierFor("awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP384))
	if other.Identity() == byARN.Identity() {
		t.Fatal("two keys share an identity")
	}
}
