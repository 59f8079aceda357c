package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cliImages is how many images the CLI case's one-process run verifies.
const cliImages = 20

// cliResult is `signet verify` as a user runs it: a fresh process each
// run, against the harness's counting registry (go-containerregistry's,
// on 127.0.0.1) and the stack's KMS test server.
type cliResult struct {
	Runs int
	// One is one signed image per process; Many is cliImages images in one
	// process.
	One, Many Summary
	// OneRequests and ManyRequests are the registry requests of one run.
	OneRequests, ManyRequests float64
	// RTT is the counting registry's round trip, measured beside.
	RTT Summary
}

// prepareCLI pushes and signs the CLI case's images.
func (b *bench) prepareCLI(ctx context.Context) ([]string, error) {
	repo := mustRepo(b.burstRegistryHost + "/" + b.id + "/cosign/cli")
	ds, err := pushImages(ctx, repo, cliImages)
	if err != nil {
		return nil, err
	}
	if err := parallel(ctx, len(ds), 4, func(i int) error { return retry(func() error { return b.cosign.sign(ctx, ds[i]) }) }); err != nil {
		return nil, err
	}
	refs := make([]string, len(ds))
	for i, d := range ds {
		refs[i] = d.String()
	}
	return refs, nil
}

// cliBinary builds ./cmd/signet unless -cli names a binary.
func (b *bench) cliBinary() (string, error) {
	if b.cfg.CLI != "" {
		return b.cfg.CLI, nil
	}
	bin := filepath.Join(b.dir, "signet")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/signet")
	cmd.Dir = b.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/signet: %w\n%s", err, out)
	}
	return bin, nil
}

// cli runs the CLI case: -cli-runs runs of one image, then as many of
// cliImages images, each a fresh process, after two unmeasured runs that
// fill the page cache.
func (b *bench) cli(ctx context.Context, refs []string, rtt Summary) (*cliResult, error) {
	bin, err := b.cliBinary()
	if err != nil {
		return nil, err
	}
	policy := filepath.Join(b.dir, "cli-policy.yaml")
	doc := fmt.Sprintf(`apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: %s-cli}
spec:
  images: [{glob: "%s/%s/cosign/**"}]
  authorities: [{name: ci-kms, key: {kms: "awskms:///%s"}}]
`, b.id, b.burstRegistryHost, b.id, b.alias)
	if err := os.WriteFile(policy, []byte(doc), 0o644); err != nil {
		return nil, err
	}
	runs := b.cfg.CLIRuns
	b.logf("cli: signet verify, a fresh process per run: 1 image × %d runs, %d images × %d runs", runs, len(refs), runs)
	run := func(images []string) (time.Duration, float64, error) {
		b.burstRegistry.Reset()
		args := append([]string{"verify", "--policy", policy}, images...)
		cmd := exec.CommandContext(ctx, bin, args...)
		begin := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(begin)
		if err != nil {
			return 0, 0, fmt.Errorf("signet %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		n := 0
		for _, c := range b.burstRegistry.Requests() {
			n += c
		}
		return took, float64(n), nil
	}
	res := &cliResult{Runs: runs, RTT: rtt}
	for _, c := range []struct {
		images []string
		sum    *Summary
		reqs   *float64
	}{
		{refs[:1], &res.One, &res.OneRequests},
		{refs, &res.Many, &res.ManyRequests},
	} {
		for range 2 {
			if _, _, err := run(c.images); err != nil {
				return nil, err
			}
		}
		var lat []time.Duration
		begin := time.Now()
		for range runs {
			took, reqs, err := run(c.images)
			if err != nil {
				return nil, err
			}
			lat = append(lat, took)
			*c.reqs = reqs
		}
		*c.sum = summarize(lat, time.Since(begin))
	}
	b.logf("  cli: 1 image p50 %s ms (%.0f registry requests), %d images p50 %s ms (%.0f registry requests); registry round trip p50 %s ms",
		ms(res.One.P50), res.OneRequests, len(refs), ms(res.Many.P50), res.ManyRequests, ms(rtt.P50))
	return res, nil
}
