package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/signet-dev/signet/test/fixtures"
)

// attestationDemo shows a policy requiring a vulnerability scan attested
// with the CI's KMS key: an image whose fresh scan is clean is admitted,
// one whose scan found a CRITICAL vulnerability is refused with the
// condition that failed. The webhook and the namespace are admissionDemo's.
func (d *demo) attestationDemo(registry, alias string) error {
	d.say("Require more than a signature: a vulnerability scan, attested with the same KMS key (cosign attest --type vuln)")
	dir, err := os.MkdirTemp("", "signet-demo-scans-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	repo := registry + "/attested"
	scanned := time.Now().Add(-time.Hour)
	images := map[string]string{}
	for _, img := range []struct {
		name       string
		severities []string
	}{
		{"clean", []string{"HIGH", "LOW"}},
		{"critical", []string{"HIGH", "CRITICAL"}},
	} {
		ref := repo + "/" + img.name + ":v1"
		digest, err := pushRunnable(d.ctx, ref, img.name)
		if err != nil {
			return err
		}
		images[img.name] = ref
		fmt.Printf("pushed %s (%s); its scan (a Trivy report, as trivy --format cosign-vuln writes it) found %v\n", ref, digest, img.severities)
		scan := filepath.Join(dir, img.name+".json")
		if err := os.WriteFile(scan, fixtures.VulnPredicate(scanned, 0, img.severities...), 0o600); err != nil {
			return err
		}
		cosign, key, at := filepath.Join(d.root, "bin", "cosign"), "awskms:///"+alias, repo+"/"+img.name+"@"+digest
		if err := d.show(cosign, "sign", "--yes", "--tlog-upload=false", "--key", key, at); err != nil {
			return err
		}
		if err := d.show(cosign, "attest", "--yes", "--tlog-upload=false", "--key", key, "--type", "vuln", "--predicate", scan, at); err != nil {
			return err
		}
	}

	d.say("Apply a policy: images under " + repo + " need a scan younger than 7 days that found no CRITICAL vulnerability (config/samples/attestations.yaml)")
	policy := fmt.Sprintf(`apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: demo-attested
spec:
  images:
  - glob: "%s/**"
  authorities:
  - name: ci-kms
    key:
      kms: awskms:///%s
      attestations:
      - name: scan
        predicateType: vuln
        maxAge: 168h
        condition: %q
`, repo, alias, fixtures.NoCriticalCondition)
	if err := d.showInput(policy, d.kubectl, "apply", "-f", "-"); err != nil {
		return err
	}
	defer d.quietRun(d.kubectl, "delete", "clusterimagepolicy", "demo-attested", "--ignore-not-found")
	if err := d.show(d.kubectl, "wait", "--for=condition=Ready", "--timeout=60s", "clusterimagepolicy/demo-attested"); err != nil {
		return err
	}

	d.say("The image whose fresh scan is clean is admitted")
	if err := d.show(d.kubectl, "-n", "demo", "run", "scanned-clean", "--image="+images["clean"]); err != nil {
		return fmt.Errorf("the image with a clean scan was refused: %w", err)
	}
	d.say("The image whose scan found a CRITICAL vulnerability is refused, with the attestation and the condition that failed")
	if err := d.show(d.kubectl, "-n", "demo", "run", "scanned-critical", "--image="+images["critical"]); err == nil {
		return fmt.Errorf("the image with a CRITICAL finding was admitted")
	}
	return nil
}
