package awssigner_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	"github.com/signet-dev/signet/test/signerpki"
)

// TestDefaultRootsFingerprints pins the embedded roots to the fingerprints
// AWS publishes (../shared/data/aws-signer-roots/README.md).
func TestDefaultRootsFingerprints(t *testing.T) {
	for _, tc := range []struct {
		store, subject, sha256 string
	}{
		{awssigner.StoreCommercial, "CN=AWS Signer Code Signing Root CA G1,OU=Cryptography,O=AWS,ST=WA,C=US", "90a87d0543c3f094dbff9589b6649affe2f3d6e0f308799be2258461c686473f"},
		{awssigner.StoreGovCloud, "CN=AWS Signer Code Signing GovCloud (US) Root CA G1,OU=Cryptography,O=AWS,ST=WA,C=US", "673653ab76f41a10546cdeb4107ecd6df2c15c2c9a0d32ed97d271b4436fc3e8"},
	} {
		certs := awssigner.DefaultRoots().Certificates(tc.store)
		if len(certs) != 1 {
			t.Fatalf("%s holds %d certificates, want 1", tc.store, len(certs))
		}
		sum := sha256.Sum256(certs[0].Raw)
		if got := hex.EncodeToString(sum[:]); got != tc.sha256 {
			t.Errorf("%s: SHA-256 %s, want %s", tc.store, got, tc.sha256)
		}
		if got := certs[0].Subject.String(); got != tc.subject {
			t.Errorf("%s: subject %q, want %q", tc.store, got, tc.subject)
		}
	}
}

// TestLoadRoots: a replacement file sorts GovCloud roots into their own store.
func TestLoadRoots(t *testing.T) {
	commercial := newRoot(t, "Rotated Signer Code Signing Root CA G2")
	gov := newRoot(t, "Rotated Signer Code Signing GovCloud (US) Root CA G2")
	path := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(path, append(gov.PEM(), commercial.PEM()...), 0o600); err != nil {
		t.Fatal(err)
	}
	roots, err := awssigner.LoadRoots(path)
	if err != nil {
		t.Fatal(err)
	}
	if c := roots.Certificates(awssigner.StoreCommercial); len(c) != 1 || !c[0].Equal(commercial.Cert) {
		t.Errorf("aws-signer-ts = %v", c)
	}
	if c := roots.Certificates(awssigner.StoreGovCloud); len(c) != 1 || !c[0].Equal(gov.Cert) {
		t.Errorf("aws-us-gov-signer-ts = %v", c)
	}
	if roots.Fingerprint() == awssigner.DefaultRoots().Fingerprint() {
		t.Error("replaced roots must not share the default roots' fingerprint")
	}

	for name, content := range map[string]string{
		"empty.pem": "",
		"leaf.pem":  string(pemOf(newLeaf(t, newRoot(t, "Issuer"), signerpki.Validity{}).Certs[0].Raw)),
	} {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := awssigner.LoadRoots(p); err == nil {
			t.Errorf("%s: loaded, want an error", name)
		}
	}
	if _, err := awssigner.LoadRoots(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("a missing file must be an error")
	}
}
