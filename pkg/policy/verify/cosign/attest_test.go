package cosign

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/test/fixtures"
)

const (
	vulnURI  = "https://cosign.sigstore.dev/attestation/vuln/v1"
	slsa1URI = "https://slsa.dev/provenance/v1"
)

// attestFixture is a fixture with a KMS key, an attestation verifier and
// the real cosign CLIs.
type attestFixture struct {
	*fixture
	uri    string
	binDir string
}

func newAttestFixture(t *testing.T) *attestFixture {
	t.Helper()
	f := newFixture(t)
	// Attestation times are whole seconds: ages are exact.
	f.clock.now = f.clock.now.Truncate(time.Second)
	return &attestFixture{
		fixture: f,
		uri:     "awskms:///" + f.alias(f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)),
		binDir:  filepath.Dir(cosignCLI(t, "cosign")),
	}
}

func (f *attestFixture) verifier(atts ...Attestation) *Verifier {
	f.t.Helper()
	v, err := NewKMS(context.Background(), f.keys, f.uri, Options{Registry: f.reg, Attestations: atts, Now: f.clock.Now})
	if err != nil {
		f.t.Fatalf("NewKMS: %v", err)
	}
	return v
}

// signed pushes an image to registry and signs it with the key.
func (f *attestFixture) signed(registry string) name.Digest {
	f.t.Helper()
	d := f.pushImage(registry)
	f.sign(d, f.uri, formatLegacy)
	return d
}

func (f *attestFixture) attest(format fixtures.AttestFormat, keyRef, typ string, predicate []byte, d name.Digest) {
	f.t.Helper()
	if err := fixtures.CosignAttest(f.binDir, format, keyRef, typ, predicate, d.String(), f.t.TempDir(), "HOME="+f.t.TempDir()); err != nil {
		f.t.Fatal(err)
	}
}

// where names the place cosign stored the image's attestation of type
// uri: the .att tag, or its bundle referrer (the only referrer).
func (f *attestFixture) where(format fixtures.AttestFormat, d name.Digest, uri string) string {
	f.t.Helper()
	where, _ := f.stored(format, d, uri)
	return where
}

// statement is the digest of the newest statement stored there.
func (f *attestFixture) statement(format fixtures.AttestFormat, d name.Digest, uri string) string {
	f.t.Helper()
	_, ref := f.stored(format, d, uri)
	digest, err := fixtures.StatementDigest(ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return digest
}

// stored is where, and the reference of the manifest holding it.
func (f *attestFixture) stored(format fixtures.AttestFormat, d name.Digest, uri string) (string, string) {
	f.t.Helper()
	if format == fixtures.AttestLegacy {
		tag := strings.Replace(d.DigestStr(), ":", "-", 1) + ".att"
		return "the " + tag + " tag", d.Context().Tag(tag).String()
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		f.t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		f.t.Fatal(err)
	}
	// Registries do not all repeat the manifest's annotations in the
	// listing: the tests store one referrer per image (signatures are in
	// the .sig tag).
	var found []v1.Hash
	for _, m := range im.Manifests {
		if pt, ok := m.Annotations[bundlePredicateTypeAnnotation]; !ok || pt == uri {
			found = append(found, m.Digest)
		}
	}
	if len(found) != 1 {
		f.t.Fatalf("%d bundle referrers of type %s, want 1: %+v", len(found), uri, im.Manifests)
	}
	return "referrer " + found[0].String(), d.Context().Digest(found[0].String()).String()
}

var scanRequirement = Attestation{Name: "scan", PredicateType: "vuln", MaxAge: 7 * 24 * time.Hour, Condition: fixtures.NoCriticalCondition}

func TestAttestationsEveryFormat(t *testing.T) {
	f := newAttestFixture(t)
	v := f.verifier(scanRequirement)
	for _, format := range []fixtures.AttestFormat{fixtures.AttestLegacy, fixtures.AttestV2Bundle, fixtures.AttestV3Bundle} {
		t.Run(string(format), func(t *testing.T) {
			scanned := f.clock.Now().Add(-2 * time.Hour)
			clean := f.signed(f.stack.ReferrersRegistry)
			f.attest(format, f.uri, "vuln", fixtures.VulnPredicate(scanned, 0, "HIGH", "LOW"), clean)
			got := verifyImage(t, v, clean)
			if got.Reason != policy.ReasonVerified || !strings.HasSuffix(got.Cause, `; attestations "scan" satisfied`) {
				t.Fatalf("clean scan: %s %q", got.Reason, got.Cause)
			}
			// A verdict admitted on a scan lasts until the scan is 7 days old.
			if want := scanned.Add(7 * 24 * time.Hour); !got.ValidUntil.Equal(want) {
				t.Fatalf("ValidUntil = %s, want %s", got.ValidUntil, want)
			}
			want := []policy.AttestationResult{{Name: "scan", PredicateType: vulnURI, Satisfied: true, Cause: "satisfied",
				Found: []policy.AttestationFound{{Where: f.where(format, clean, vulnURI), Statement: f.statement(format, clean, vulnURI), Satisfied: true, Cause: "satisfied"}}}}
			if !equalAttestations(got.Attestations, want) {
				t.Fatalf("attestations = %+v\nwant %+v", got.Attestations, want)
			}

			critical := f.signed(f.stack.ReferrersRegistry)
			f.attest(format, f.uri, "vuln", fixtures.VulnPredicate(scanned, 0, "HIGH", "CRITICAL"), critical)
			got = verifyImage(t, v, critical)
			cause := `attestation in ` + f.where(format, critical, vulnURI) + ` does not meet the condition ` + fixtures.NoCriticalCondition
			expect(t, got, policy.ReasonAttestationUnsatisfied, `the signature verifies, but required attestation "scan" (`+vulnURI+`) fails: `+cause)
			want = []policy.AttestationResult{{Name: "scan", PredicateType: vulnURI, Cause: cause,
				Found: []policy.AttestationFound{{Where: f.where(format, critical, vulnURI), Statement: f.statement(format, critical, vulnURI), Cause: cause}}}}
			if !equalAttestations(got.Attestations, want) {
				t.Fatalf("attestations = %+v\nwant %+v", got.Attestations, want)
			}
		})
	}
}

func TestAttestationFailures(t *testing.T) {
	f := newAttestFixture(t)
	reg := f.stack.Registry
	v := f.verifier(scanRequirement)
	now := f.clock.Now()

	t.Run("missing", func(t *testing.T) {
		d := f.signed(reg)
		expect(t, verifyImage(t, v, d), policy.ReasonAttestationUnsatisfied,
			`the signature verifies, but required attestation "scan" (`+vulnURI+`) is missing: no attestation of this type is stored with the image`)
	})
	t.Run("unsigned image with a clean scan", func(t *testing.T) {
		d := f.pushImage(reg)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(now, 0), d)
		expect(t, verifyImage(t, v, d), policy.ReasonNoSignature, "no signature found")
	})
	t.Run("stale", func(t *testing.T) {
		d := f.signed(reg)
		scanned := now.Add(-8 * 24 * time.Hour)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(scanned, 0), d)
		expect(t, verifyImage(t, v, d), policy.ReasonAttestationUnsatisfied,
			`the signature verifies, but required attestation "scan" (`+vulnURI+`) fails: attestation in `+f.where(fixtures.AttestLegacy, d, vulnURI)+
				` is too old: 192h0m0s old (predicate.metadata.scanFinishedOn `+scanned.UTC().Format(time.RFC3339)+`), maxAge 168h0m0s`)
	})
	t.Run("stale and fresh: the fresh one suffices", func(t *testing.T) {
		d := f.signed(reg)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(now.Add(-8*24*time.Hour), 0), d)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(now.Add(-time.Hour), 0), d)
		got := verifyImage(t, v, d)
		if got.Reason != policy.ReasonVerified || len(got.Attestations) != 1 || len(got.Attestations[0].Found) != 2 {
			t.Fatalf("%s %q %+v", got.Reason, got.Cause, got.Attestations)
		}
	})
	t.Run("signed by another key", func(t *testing.T) {
		d := f.signed(reg)
		other := "awskms:///" + f.alias(f.createKey("us-east-1", kmstypes.KeySpecEccNistP256))
		f.attest(fixtures.AttestV3Bundle, other, "vuln", fixtures.VulnPredicate(now, 0), d)
		expect(t, verifyImage(t, v, d), policy.ReasonAttestationUnsatisfied,
			`the signature verifies, but required attestation "scan" (`+vulnURI+`) fails: attestation of type `+vulnURI+` in `+
				f.where(fixtures.AttestV3Bundle, d, vulnURI)+` is not signed by the key`)
	})
	t.Run("replayed from another digest", func(t *testing.T) {
		donor := f.signed(reg)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(now, 0), donor)
		d := f.signed(reg)
		// Copy the donor's .att tag to the image's: the attacker cannot
		// sign, but can push.
		att, err := remote.Image(donor.Context().Tag(strings.Replace(donor.DigestStr(), ":", "-", 1) + ".att"))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1)+".att"), att); err != nil {
			t.Fatal(err)
		}
		expect(t, verifyImage(t, v, d), policy.ReasonAttestationUnsatisfied,
			`the signature verifies, but required attestation "scan" (`+vulnURI+`) fails: attestation in `+f.where(fixtures.AttestLegacy, d, vulnURI)+
				` was made for `+donor.DigestStr())
	})
	t.Run("huge predicate", func(t *testing.T) {
		d := f.signed(reg)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(now, 1<<20), d)
		where := f.where(fixtures.AttestLegacy, d, vulnURI)
		m, err := remote.Image(d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".att"))
		if err != nil {
			t.Fatal(err)
		}
		layers, err := m.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		l := layers.Layers[0]
		expect(t, verifyImage(t, v, d), policy.ReasonLimitExceeded, fmt.Sprintf(
			"reading %s: registry exceeded Signet's limit on attestation size (1048576) at %s@%s (%d bytes)", where, d.Context().Name(), l.Digest, l.Size))
	})
	t.Run("condition errors at run time", func(t *testing.T) {
		d := f.signed(reg)
		f.attest(fixtures.AttestLegacy, f.uri, "vuln", fixtures.VulnPredicate(now, 0), d)
		cond := `predicate.scanner.nosuch == 'x'`
		v := f.verifier(Attestation{Name: "scan", PredicateType: "vuln", Condition: cond})
		expect(t, verifyImage(t, v, d), policy.ReasonAttestationUnsatisfied,
			`the signature verifies, but required attestation "scan" (`+vulnURI+`) fails: attestation in `+f.where(fixtures.AttestLegacy, d, vulnURI)+
				`: condition `+cond+` failed: no such key: nosuch`)
	})
}

func TestAttestationSLSAProvenance(t *testing.T) {
	f := newAttestFixture(t)
	v := f.verifier(Attestation{Name: "provenance", PredicateType: "slsaprovenance1", Condition: fixtures.BuilderCondition})
	right := f.signed(f.stack.ReferrersRegistry)
	f.attest(fixtures.AttestV3Bundle, f.uri, "slsaprovenance1", fixtures.SLSAProvenance(fixtures.CIBuilder, f.clock.Now()), right)
	if got := verifyImage(t, v, right); got.Reason != policy.ReasonVerified || !got.ValidUntil.IsZero() {
		t.Fatalf("right builder: %s %q (ValidUntil %s)", got.Reason, got.Cause, got.ValidUntil)
	}
	wrong := f.signed(f.stack.ReferrersRegistry)
	f.attest(fixtures.AttestV3Bundle, f.uri, "slsaprovenance1", fixtures.SLSAProvenance("https://attacker.example.com/builder", f.clock.Now()), wrong)
	expect(t, verifyImage(t, v, wrong), policy.ReasonAttestationUnsatisfied,
		`the signature verifies, but required attestation "provenance" (`+slsa1URI+`) fails: attestation in `+f.where(fixtures.AttestV3Bundle, wrong, slsa1URI)+
			` does not meet the condition `+fixtures.BuilderCondition)
}

func equalAttestations(a, b []policy.AttestationResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].PredicateType != b[i].PredicateType || a[i].Satisfied != b[i].Satisfied || a[i].Cause != b[i].Cause || len(a[i].Found) != len(b[i].Found) {
			return false
		}
		for j := range a[i].Found {
			if a[i].Found[j] != b[i].Found[j] {
				return false
			}
		}
	}
	return true
}
