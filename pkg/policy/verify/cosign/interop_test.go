package cosign

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/signet-dev/signet/test/stack"
)

// cosignCLI returns <repo>/bin/<tool> (the stack lives in <repo>/.stack); the interop tests need the real CLIs
// and fail, not skip, without them (`make test` builds them).
func cosignCLI(t *testing.T, tool string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(stack.Load(t).Dir), "bin", tool)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: run hack/tools.sh cosign cosign3", p)
	}
	return p
}

// runCosign runs a cosign CLI signing through the in-process KMS server
// (AWS_ENDPOINT_URL_KMS, set by the fixture) with a private HOME.
func runCosign(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "COSIGN_EXPERIMENTAL=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out.String())
	}
}

func TestInteropWithCosignCLIs(t *testing.T) {
	f := newFixture(t)
	cosign2, cosign3 := cosignCLI(t, "cosign"), cosignCLI(t, "cosign3")
	modes := []struct {
		name   string
		bin    string
		format signFormat
		args   []string
	}{
		{"v2-legacy", cosign2, formatLegacy, []string{"sign", "--tlog-upload=false", "-y"}},
		{"v2-oci-1-1", cosign2, formatReferrers, []string{"sign", "--tlog-upload=false", "--registry-referrers-mode=oci-1-1", "-y"}},
		{"v2-new-bundle-format", cosign2, formatBundle, []string{"sign", "--tlog-upload=false", "--new-bundle-format", "-y"}},
		{"v3-default", cosign3, formatBundle, []string{"sign", "--use-signing-config=false", "--tlog-upload=false", "-y"}},
	}
	for _, spec := range []kmstypes.KeySpec{kmstypes.KeySpecEccNistP256, kmstypes.KeySpecEccNistP384, kmstypes.KeySpecRsa2048} {
		uri := "awskms:///" + f.alias(f.createKey("us-east-1", spec))
		v := f.verifierFor(uri)
		for regName, reg := range f.registries() {
			for _, m := range modes {
				t.Run(string(spec)+"/"+regName+"/"+m.name, func(t *testing.T) {
					d := f.pushImage(reg)
					signs := f.kms.Calls("Sign")
					runCosign(t, m.bin, append(m.args, "--key", uri, d.String())...)
					if f.kms.Calls("Sign") != signs+1 {
						t.Fatalf("the CLI did not sign through the KMS test server (Sign calls %d → %d)", signs, f.kms.Calls("Sign"))
					}
					verifiedCause(t, verifyImage(t, v, d), m.format, sigTag(d))
				})
			}
		}
	}
}
