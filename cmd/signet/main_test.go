package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/stack"
)

// cliFixture: the signet binary, a KMS key with an alias, and images in the
// stack's registry, one signed with the real cosign CLI through the KMS
// test server and one not.
type cliFixture struct {
	bin, policyFile  string
	binDir           string // the cosign CLIs
	signed, unsigned string // tag references
	signedDigest     string
	unsignedDigest   string
	env              []string
	repo             string
	alias            string
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	env := stack.Load(t)
	root, _ := filepath.Abs("../..")
	cosignBin := filepath.Join(root, "bin", "cosign")
	if _, err := os.Stat(cosignBin); err != nil {
		t.Fatalf("the cosign CLI is not built: run `make test-tools` (%v)", err)
	}
	f := &cliFixture{bin: filepath.Join(t.TempDir(), "signet"), binDir: filepath.Dir(cosignBin), env: os.Environ()}
	if out, err := exec.Command("go", "build", "-o", f.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Each test its own key and repository.
	alias := fmt.Sprintf("alias/signet-cli-%d-%s", os.Getpid(), t.Name())
	f.alias = alias
	if err := fixtures.CreateKMSAlias(context.Background(), alias); err != nil {
		t.Fatal(err)
	}
	f.repo = fmt.Sprintf("%s/cli-%d/%s", env.Registry, os.Getpid(), strings.ToLower(t.Name()))
	f.signed, f.signedDigest = push(t, f.repo+"/app:signed")
	f.unsigned, f.unsignedDigest = push(t, f.repo+"/app:unsigned")
	if err := fixtures.CosignSign(cosignBin, alias, f.repo+"/app@"+f.signedDigest); err != nil {
		t.Fatal(err)
	}
	f.policyFile = filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, f.policyFile, fmt.Sprintf(`apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: cli-test
spec:
  images:
  - glob: "%s/**"
  authorities:
  - name: ci-kms
    key:
      kms: awskms:///%s
`, f.repo, alias))
	return f
}

func push(t *testing.T, ref string) (string, string) {
	t.Helper()
	digest, err := fixtures.PushRandom(ref)
	if err != nil {
		t.Fatal(err)
	}
	return ref, digest
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *cliFixture) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(f.bin, args...)
	cmd.Env = f.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	f := newCLIFixture(t)
	signedLine := fmt.Sprintf("ADMITTED: image %s@%s (args[0]) admitted by ClusterImagePolicy \"cli-test\" (authority \"ci-kms\")\n", f.signed, f.signedDigest)

	t.Run("signed image: exit 0", func(t *testing.T) {
		code, out, errOut := f.run(t, "", "verify", "--policy", f.policyFile, f.signed)
		if code != 0 || out != signedLine {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
	t.Run("policy from stdin and flags after the image", func(t *testing.T) {
		policy, _ := os.ReadFile(f.policyFile)
		code, out, _ := f.run(t, string(policy), "verify", f.signed, "--policy", "-")
		if code != 0 || out != signedLine {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("policy directory", func(t *testing.T) {
		code, out, _ := f.run(t, "", "verify", "--policy", filepath.Dir(f.policyFile), f.signed)
		if code != 0 || out != signedLine {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("unsigned image: exit 1", func(t *testing.T) {
		code, out, _ := f.run(t, "", "verify", "--policy", f.policyFile, f.signed, f.unsigned)
		if code != 1 || !strings.HasPrefix(out, signedLine) {
			t.Fatalf("exit %d: %s", code, out)
		}
		second := strings.TrimPrefix(out, signedLine)
		want := fmt.Sprintf(`DENIED: image %s@sha256:`, f.unsigned)
		if !strings.HasPrefix(second, want) || !strings.Contains(second, `(args[1]) denied by ClusterImagePolicy "cli-test": no valid signature from authority "ci-kms" (awskms:///alias/`) ||
			!strings.HasSuffix(second, "Sign this digest in your pipeline with one of the policy's authorities.\n") {
			t.Fatalf("denial line: %s", second)
		}
	})
	t.Run("json output", func(t *testing.T) {
		code, out, _ := f.run(t, "", "verify", "--output", "json", "--policy", f.policyFile, f.signed, "nginx")
		if code != 1 {
			t.Fatalf("exit %d (nginx is governed by no policy: denied by default)", code)
		}
		var got jsonDecision
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got.Allowed || len(got.Images) != 2 || got.Images[0].Verdict != "admitted" || got.Images[0].Digest != f.signedDigest ||
			got.Images[0].Policies[0].AdmittedBy != "ci-kms" || got.Images[0].Policies[0].Authorities[0].Reason != "Verified" ||
			got.Images[1].Verdict != "denied" || !got.Images[1].NoMatch {
			t.Fatalf("json: %+v", got)
		}
	})
	t.Run("no-match allow", func(t *testing.T) {
		code, out, _ := f.run(t, "", "verify", "--no-match-policy=allow", "--policy", f.policyFile, "nginx")
		want := "ADMITTED: image nginx (args[0]) is not governed by any ClusterImagePolicy. No ClusterImagePolicy governs this image and unmatched images are allowed: add a policy whose images cover it.\n"
		if code != 0 || out != want {
			t.Fatalf("exit %d: %q", code, out)
		}
	})
	t.Run("invalid policy: exit 2 with the field path", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		writeFile(t, bad, "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: bad}\nspec:\n  images: [{glob: \"x.example.com/**\"}]\n  authorities: [{name: a, key: {kms: alias/cosign}}]\n")
		code, out, errOut := f.run(t, "", "verify", "--policy", bad, f.signed)
		want := fmt.Sprintf("signet verify: %s: ClusterImagePolicy \"bad\" is invalid: spec.authorities[0].key.kms: Invalid value: \"alias/cosign\": kms must be an AWS KMS key URI: awskms:///KEY_ID, awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY_ID\n", bad)
		if code != 2 || out != "" || errOut != want {
			t.Fatalf("exit %d\nstderr: %s\nwant:   %s", code, errOut, want)
		}
	})
	t.Run("attestation conditions refused as the policy webhook refuses them: exit 2", func(t *testing.T) {
		for _, tc := range []struct{ cond, why string }{
			{fixtures.UndeclaredCondition, fixtures.UndeclaredConditionError},
			{fixtures.CrossProductCondition, fixtures.CrossProductConditionError},
		} {
			p := filepath.Join(t.TempDir(), "cel.yaml")
			writeFile(t, p, mustRead(t, f.policyFile)+fmt.Sprintf("      attestations:\n      - name: scan\n        predicateType: vuln\n        condition: %q\n", tc.cond))
			code, out, errOut := f.run(t, "", "verify", "--policy", p, f.signed)
			want := fmt.Sprintf("signet verify: %s: ClusterImagePolicy \"cli-test\" is invalid: spec.authorities[0].key.attestations[0].condition: Invalid value: %q: invalid CEL condition: %s\n", p, tc.cond, tc.why)
			if code != 2 || out != "" || errOut != want {
				t.Fatalf("exit %d\nstderr: %s\nwant:   %s", code, errOut, want)
			}
		}
	})
	t.Run("a signer authority listing attestations: exit 2, the CRD's words", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "signer.yaml")
		writeFile(t, p, "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: signer}\nspec:\n  images: [{glob: \"x.example.com/**\"}]\n"+
			"  authorities:\n  - name: ecr-signing\n    signer:\n      profiles: [\"arn:aws:signer:us-east-1:123456789012:/signing-profiles/P1\"]\n      attestations:\n      - {name: scan, predicateType: vuln}\n")
		code, out, errOut := f.run(t, "", "verify", "--policy", p, f.signed)
		want := fmt.Sprintf("signet verify: %s: ClusterImagePolicy \"signer\" is invalid: spec.authorities[0].signer.attestations: Invalid value: a signer authority cannot require attestations: Signet checks in-toto attestations made with cosign attest and a cosign key; list them under key.attestations of a key authority that trusts the key your pipeline attests with\n", p)
		if code != 2 || out != "" || errOut != want {
			t.Fatalf("exit %d\nstderr: %s\nwant:   %s", code, errOut, want)
		}
	})
	t.Run("usage errors: exit 2", func(t *testing.T) {
		code, _, errOut := f.run(t, "", "verify", "--output=yaml", f.signed)
		want := "signet verify: no --policy given: name the ClusterImagePolicy files the cluster uses\n--output \"yaml\": must be text or json\n"
		if code != 2 || errOut != want {
			t.Fatalf("exit %d: %q", code, errOut)
		}
		if code, _, _ := f.run(t, ""); code != 2 {
			t.Fatalf("no command: exit %d", code)
		}
	})
	t.Run("unreachable registry: exit 1, transient", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "down.yaml")
		writeFile(t, p, strings.Replace(mustRead(t, f.policyFile), f.repo+"/**", "127.0.0.1:1/**", 1))
		code, out, _ := f.run(t, "", "verify", "--policy", p, "127.0.0.1:1/app:v1")
		if code != 1 || !strings.HasPrefix(out, `DENIED: image 127.0.0.1:1/app:v1 (args[0]) denied: could not resolve tag "v1" to a digest: `) ||
			!strings.HasSuffix(out, "This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.\n") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("break-glass: admitted where the policy allows it, refused where it does not", func(t *testing.T) {
		allows := filepath.Join(t.TempDir(), "allows.yaml")
		writeFile(t, allows, mustRead(t, f.policyFile)+"  breakGlass:\n    allowed: true\n")
		code, out, errOut := f.run(t, "", "verify", "--policy", allows, "--break-glass", "INC-4711: signer down", f.unsigned)
		cause := fmt.Sprintf(`no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, f.alias)
		digest := f.unsignedDigest
		want := fmt.Sprintf("BREAK-GLASS: image %s@%s (args[0]) admitted by break-glass despite ClusterImagePolicy \"cli-test\": %s\n", f.unsigned, digest, cause)
		if code != 0 || out != want {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s\nstderr: %s", code, out, want, errOut)
		}
		code, out, _ = f.run(t, "", "verify", "--policy", f.policyFile, "--break-glass", "INC-4711: signer down", f.unsigned)
		want = fmt.Sprintf("DENIED: image %s@%s (args[0]) denied by ClusterImagePolicy \"cli-test\": %s Break-glass does not apply: ClusterImagePolicy \"cli-test\" does not allow it (spec.breakGlass.allowed is not true).\n", f.unsigned, digest, cause)
		if code != 1 || out != want {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s", code, out, want)
		}
	})
	t.Run("break-glass: a short reason is a usage error", func(t *testing.T) {
		code, _, errOut := f.run(t, "", "verify", "--policy", f.policyFile, "--break-glass", "hotfix", f.unsigned)
		want := "signet verify: --break-glass: break-glass reason \"hotfix\" is too short (6 characters, at least 10): say why the images must run unverified, e.g. \"INC-4711: signing service down, hotfix for checkout\"\n"
		if code != 2 || errOut != want {
			t.Fatalf("exit %d: %q", code, errOut)
		}
	})
	t.Run("static authorities: pass under no-match deny, fail with the message", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "pass.yaml"), fmt.Sprintf("apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: allow-app}\nspec:\n  images: [{glob: \"%s/app\"}]\n  authorities: [{name: vendor, static: {action: pass}}]\n", f.repo))
		writeFile(t, filepath.Join(dir, "fail.yaml"), fmt.Sprintf("apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: deny-other}\nspec:\n  images: [{glob: \"%s/other\"}]\n  authorities: [{name: nope, static: {action: fail, message: \"Use %s/app instead.\"}}]\n", f.repo, f.repo))
		other, otherDigest := push(t, f.repo+"/other:v1")
		code, out, errOut := f.run(t, "", "verify", "--no-match-policy=deny", "--policy", dir, f.unsigned, other)
		want := fmt.Sprintf("ADMITTED: image %s@%s (args[0]) admitted by ClusterImagePolicy \"allow-app\" (authority \"vendor\")\n", f.unsigned, f.unsignedDigest) +
			fmt.Sprintf("DENIED: image %s@%s (args[1]) denied by ClusterImagePolicy \"deny-other\": Use %s/app instead.\n", other, otherDigest, f.repo)
		if code != 1 || out != want {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s\nstderr: %s", code, out, want, errOut)
		}
	})
	t.Run("attestations: a clean scan admitted, a CRITICAL one denied with the condition; json lists what was found", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "attest.yaml")
		writeFile(t, p, strings.Replace(mustRead(t, f.policyFile), "name: cli-test", "name: cli-attest", 1)+
			fmt.Sprintf("      attestations:\n      - name: scan\n        predicateType: vuln\n        maxAge: 168h\n        condition: %q\n", fixtures.NoCriticalCondition))
		scanned := time.Now().Add(-time.Hour)
		attested := func(tag string, severities ...string) (string, string) {
			ref, digest := push(t, f.repo+"/app:"+tag)
			digestRef := f.repo + "/app@" + digest
			if err := fixtures.CosignSign(filepath.Join(f.binDir, "cosign"), f.alias, digestRef); err != nil {
				t.Fatal(err)
			}
			if err := fixtures.CosignAttest(f.binDir, fixtures.AttestLegacy, "awskms:///"+f.alias, "vuln", fixtures.VulnPredicate(scanned, 0, severities...), digestRef, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			return ref, digest
		}
		clean, cleanDigest := attested("clean", "HIGH")
		critical, criticalDigest := attested("critical", "HIGH", "CRITICAL")
		attTag := func(digest string) string { return "the " + strings.Replace(digest, ":", "-", 1) + ".att tag" }
		statement := func(digest string) string {
			s, err := fixtures.StatementDigest(f.repo + "/app:" + strings.Replace(digest, ":", "-", 1) + ".att")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		const vulnURI = "https://cosign.sigstore.dev/attestation/vuln/v1"
		failed := "attestation in " + attTag(criticalDigest) + " does not meet the condition " + fixtures.NoCriticalCondition

		code, out, errOut := f.run(t, "", "verify", "--policy", p, clean, critical)
		want := fmt.Sprintf("ADMITTED: image %s@%s (args[0]) admitted by ClusterImagePolicy \"cli-attest\" (authority \"ci-kms\")\n", clean, cleanDigest) +
			fmt.Sprintf("DENIED: image %s@%s (args[1]) denied by ClusterImagePolicy \"cli-attest\": authority \"ci-kms\" (awskms:///%s) is not satisfied: the signature verifies, but required attestation \"scan\" (%s) fails: %s. Attest this digest in your pipeline (cosign attest with the authority's key) with a predicate that meets the policy.\n",
				critical, criticalDigest, f.alias, vulnURI, failed)
		if code != 1 || out != want {
			t.Fatalf("exit %d\nstdout: %s\nwant:   %s\nstderr: %s", code, out, want, errOut)
		}

		code, out, _ = f.run(t, "", "verify", "--output", "json", "--policy", p, clean, critical)
		var got jsonDecision
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 1 || len(got.Images) != 2 {
			t.Fatalf("exit %d, %v\n%s", code, err, out)
		}
		wantAtts := [][]jsonAttestation{
			{{Name: "scan", PredicateType: vulnURI, Satisfied: true, Reason: "satisfied",
				Found: []jsonAttestationFound{{Where: attTag(cleanDigest), Statement: statement(cleanDigest), Satisfied: true, Reason: "satisfied"}}}},
			{{Name: "scan", PredicateType: vulnURI, Reason: failed,
				Found: []jsonAttestationFound{{Where: attTag(criticalDigest), Statement: statement(criticalDigest), Reason: failed}}}},
		}
		for i, img := range got.Images {
			if len(img.Policies) != 1 || len(img.Policies[0].Authorities) != 1 {
				t.Fatalf("images[%d]: %+v", i, img)
			}
			if a := img.Policies[0].Authorities[0]; !reflect.DeepEqual(a.Attestations, wantAtts[i]) {
				t.Errorf("images[%d] attestations\n got %+v\nwant %+v", i, a.Attestations, wantAtts[i])
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		code, out, _ := f.run(t, "", "version")
		if code != 0 || !strings.HasPrefix(out, "signet ") {
			t.Fatalf("exit %d: %q", code, out)
		}
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
