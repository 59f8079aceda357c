package awssigner_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
	"github.com/signet-dev/signet/test/signerpki"
)

// notationCLI returns <repo>/bin/notation (the stack lives in <repo>/.stack);
// the interop test needs the real CLI and fails, not skips, without it
// (`make test` builds it).
func notationCLI(t *testing.T, f *fixture) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(f.stack.Dir), "bin", "notation")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run hack/tools.sh notation", p)
	}
	return p
}

// TestInteropWithNotationCLI signs with the real notation CLI v1.3.2 and a
// local key whose certificate chains to a root Signet trusts (the test
// roots replace the embedded ones, as --aws-signer-roots does). Such a
// signature is valid Notation, but AWS Signer did not make it: it uses the
// notary.x509 scheme and names no verification plugin, so it carries no
// signing profile. An authority that trusts signing profiles must deny it,
// and say why.
func TestInteropWithNotationCLI(t *testing.T) {
	f := setup(t)
	bin := notationCLI(t, f)

	// notation's configuration: one local key, the test PKI's leaf.
	config := t.TempDir()
	chain := newLeaf(t, f.commercialCA, signerpki.Validity{})
	keyDER, err := x509.MarshalPKCS8PrivateKey(chain.Key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(config, "notation")
	keyPath, certPath := filepath.Join(dir, "signet-test.key"), filepath.Join(dir, "signet-test.crt")
	var certs []byte
	for _, c := range chain.Certs {
		certs = append(certs, pemOf(c.Raw)...)
	}
	// A trust policy for notation verify, trusting the same root as a CA:
	// proves the CLI's signature is sound Notation before Signet judges it.
	trust, _ := json.Marshal(map[string]any{"version": "1.0", "trustPolicies": []map[string]any{{
		"name": "signet-test", "registryScopes": []string{"*"},
		"signatureVerification": map[string]string{"level": "strict"},
		"trustStores":           []string{"ca:signet-test"}, "trustedIdentities": []string{"*"},
	}}})
	keys, _ := json.Marshal(map[string]any{
		"default": "signet-test",
		"keys":    []map[string]string{{"name": "signet-test", "keyPath": keyPath, "certPath": certPath}},
	})
	for path, b := range map[string][]byte{
		keyPath:                                pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		certPath:                               certs,
		filepath.Join(dir, "signingkeys.json"): keys,
		filepath.Join(dir, "trustpolicy.json"): trust,
		filepath.Join(dir, "truststore", "x509", "ca", "signet-test", "root.crt"): f.commercialRoot.PEM(),
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	v := f.verifier(t, f.checker(t, 0), awssigner.RevocationEnforce, profileARN)
	for _, tc := range []struct {
		name      string
		referrers bool
		args      []string
	}{
		{"JWS, referrers tag schema", false, nil},
		{"COSE, referrers tag schema", false, []string{"--signature-format", "cose"}},
		{"JWS, referrers API", true, []string{"--force-referrers-tag=false"}},
		{"COSE, referrers API", true, []string{"--signature-format", "cose", "--force-referrers-tag=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := f.stack.Registry
			if tc.referrers {
				host = f.stack.ReferrersRegistry
			}
			ref, _ := f.image(t, host)
			args := append([]string{"sign", "--insecure-registry", "--key", "signet-test"}, tc.args...)
			runNotation(t, bin, config, append(args, ref.String())...)
			runNotation(t, bin, config, "verify", "--insecure-registry", ref.String())

			calls := f.signer.Calls()
			got := verify(t, v, ref)
			expect(t, got, policy.ReasonUntrustedIdentity, "signature was not made by AWS Signer (signing scheme notary.x509, verification plugin none)", "")
			if n := f.signer.Calls() - calls; n != 0 {
				t.Errorf("a signature that is not AWS Signer's made %d Signer calls", n)
			}
		})
	}
}

func runNotation(t *testing.T, bin, config string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+config, "XDG_CONFIG_HOME="+config)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("notation %v: %v\n%s", args, err, out.String())
	}
}
