package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"
)

// row is one line of the results table.
type row struct {
	Case  string
	Setup string
	Conc  int // requests in flight
	// Client is measured by the harness: the request sent over HTTPS/2 to
	// the answer read, as the API server would see it.
	Client Summary
	// Verification is where the webhook's verification-time histogram
	// puts the median and the 99th percentile of the phase's
	// verifications: the upper bounds of their buckets.
	Verification [2]time.Duration
	// Under1ms is the fraction of requests that controller-runtime's
	// handler latency histogram puts at or under 1 ms (decoding,
	// deciding, encoding); negative when not measured.
	Under1ms float64
	// Registry describes the registry traffic the webhook caused.
	Registry string
	// RegistryPerAdmission is the registry requests per admission of a
	// cold case (0 for others).
	RegistryPerAdmission float64
}

// images are prepared before anything is measured, so pushing and signing
// never compete with the webhook for the two cores.
type images struct {
	warm         string
	cosignCold1  []string
	cosignColdC  []string
	signerCold1  []string
	signerColdC  []string
	burst        name.Digest
	burstRef     string
	fastProbe    string   // an image on the cache fill's registry, for its round trip
	cli          []string // signed images on the harness's counting registry, for the CLI case
	rolloutImage string   // by tag: the pinning webhook resolves it
}

// runCases runs every case against one webhook, in the order of the
// table (the cache fill against a fresh one), and judges the targets.
func (b *bench) runCases(ctx context.Context) (*report, error) {
	begin := time.Now()
	rep := &report{Cfg: b.cfg, Facts: machineFacts(b.root, b.cfg.Args)}
	rep.Facts.Webhook, rep.Facts.Note = "built from the working tree (go build ./cmd/webhook)", b.cfg.Note
	if b.cfg.Webhook != "" {
		rep.Facts.Webhook = "given with -webhook"
	}
	w, err := b.startWebhook("main")
	if err != nil {
		return nil, err
	}
	b.later(w.Stop)
	if err := b.policies(ctx); err != nil {
		return nil, err
	}
	if b.cfg.WideOnly {
		w.Stop()
		if rep.Wide, err = b.wide(ctx); err != nil {
			return nil, err
		}
		rep.Duration = time.Since(begin)
		return rep, nil
	}
	imgs, err := b.prepare(ctx)
	if err != nil {
		return nil, err
	}

	if rep.RTT, err = b.measureRTT(ctx, imgs); err != nil {
		return nil, err
	}
	if rep.Floors, err = b.measureFloors(ctx); err != nil {
		return nil, err
	}
	c := b.cfg.Concurrency
	// Warm twice: one request at a time for the handler's latency, then
	// -concurrency at a time for throughput (where latency is queueing for
	// the two cores the client shares with the webhook).
	for _, conc := range []int{1, c} {
		warm, err := b.warm(ctx, w, imgs.warm, conc)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, warm)
	}
	for _, cc := range []struct {
		name, scheme string
		refs         []string
		conc         int
	}{
		{"cold cosign-KMS", "cosign", imgs.cosignCold1, 1},
		{"cold cosign-KMS", "cosign", imgs.cosignColdC, c},
		{"cold AWS Signer", "awssigner", imgs.signerCold1, 1},
		{"cold AWS Signer", "awssigner", imgs.signerColdC, c},
	} {
		r, err := b.cold(ctx, w, cc.name, cc.scheme, cc.refs, cc.conc)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, r)
	}
	var cliRTT Summary
	for _, r := range rep.RTT {
		if strings.HasPrefix(r.Registry, b.burstRegistryHost) {
			cliRTT = r.Summary
		}
	}
	if rep.CLI, err = b.cli(ctx, imgs.cli, cliRTT); err != nil {
		return nil, err
	}
	burst, br, err := b.burst(ctx, w, imgs)
	if err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, burst)
	rep.Burst = br
	if rep.Mixed, err = b.mixed(ctx, w, imgs.rolloutImage); err != nil {
		return nil, err
	}
	if rep.MainMemory, err = w.memory(); err != nil {
		return nil, err
	}
	w.Stop()

	fill, mem, err := b.fill(ctx)
	if err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, fill)
	rep.Fill = mem
	if rep.Wide, err = b.wide(ctx); err != nil {
		return nil, err
	}
	if rep.Audit, err = b.audit(ctx); err != nil {
		return nil, err
	}
	rep.Duration = time.Since(begin)
	rep.Facts.LoadEnd = loadavg()
	rep.judge()
	if b.cfg.PprofDir != "" {
		if rep.Profiles, err = b.readProfiles(ctx); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// prepare pushes and signs every image the cases need.
func (b *bench) prepare(ctx context.Context) (*images, error) {
	n := b.cfg.Cold
	b.logf("pushing %d images and signing them in-process: cosign with the KMS key, AWS Signer with the test chain", 4*n+4)
	begin := time.Now()
	imgs := &images{}
	cosignRepo, signerRepo := b.repo("cosign/app"), b.repo("signer/app")

	var cosignDigests, signerDigests []name.Digest
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		cosignDigests, err = pushImages(gctx, cosignRepo, 2*n+2)
		return err
	})
	g.Go(func() (err error) {
		signerDigests, err = pushImages(gctx, signerRepo, 2*n)
		return err
	})
	g.Go(func() error {
		d, err := pushImages(gctx, b.burstRepo(), 1)
		if err == nil {
			imgs.burst = d[0]
		}
		return err
	})
	g.Go(func() (err error) {
		imgs.cli, err = b.prepareCLI(gctx)
		return err
	})
	g.Go(func() error {
		d, err := pushImages(gctx, b.fastRepo("cosign/rtt"), 1)
		if err == nil {
			imgs.fastProbe = d[0].String()
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error {
		all := append(append([]name.Digest(nil), cosignDigests...), imgs.burst)
		return parallel(gctx, len(all), 8, func(i int) error { return retry(func() error { return b.cosign.sign(gctx, all[i]) }) })
	})
	g.Go(func() error {
		return parallel(gctx, len(signerDigests), 4, func(i int) error { return retry(func() error { return b.signer.sign(gctx, signerDigests[i]) }) })
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// References as a pinned rollout writes them: repo:tag@digest.
	ref := func(d name.Digest, i int) string {
		return fmt.Sprintf("%s:v-%d@%s", d.Context().Name(), i, d.DigestStr())
	}
	for i, d := range cosignDigests[:2*n] {
		if i < n {
			imgs.cosignCold1 = append(imgs.cosignCold1, ref(d, i))
		} else {
			imgs.cosignColdC = append(imgs.cosignColdC, ref(d, i))
		}
	}
	imgs.warm = ref(cosignDigests[2*n], 2*n)
	imgs.rolloutImage = fmt.Sprintf("%s:v-%d", cosignRepo.Name(), 2*n+1)
	for i, d := range signerDigests {
		if i < n {
			imgs.signerCold1 = append(imgs.signerCold1, ref(d, i))
		} else {
			imgs.signerColdC = append(imgs.signerColdC, ref(d, i))
		}
	}
	imgs.burstRef = ref(imgs.burst, 0)
	b.logf("prepared in %s", time.Since(begin).Round(time.Millisecond))
	return imgs, nil
}

// reviews builds one Pod review per image reference, all expected
// allowed; seq0 numbers their Pods and UIDs.
func (b *bench) reviews(refs []string, seq0 int) ([]review, error) {
	out := make([]review, len(refs))
	for i, ref := range refs {
		body, err := podReview(b.namespace, fmt.Sprintf("bench-7d9f8c6b5-%05d", seq0+i), ref, seq0+i)
		if err != nil {
			return nil, err
		}
		out[i] = review{body: body, allowed: true}
	}
	return out, nil
}

// logRow prints a case's result as it finishes.
func (b *bench) logRow(r row) {
	errs := ""
	if r.Client.Errors > 0 {
		errs = fmt.Sprintf(", %d ERRORS (first: %s)", r.Client.Errors, r.Client.ErrorSamples[0])
	}
	b.logf("  %s: p50 %s ms, p90 %s ms, p99 %s ms, max %s ms, %.0f/s; verification p50 ≤ %s ms, p99 ≤ %s ms; %s%s",
		r.Case, ms(r.Client.P50), ms(r.Client.P90), ms(r.Client.P99), ms(r.Client.Max), r.Client.Throughput(),
		ms(r.Verification[0]), ms(r.Verification[1]), r.Registry, errs)
}

// readProfiles summarises the profiles -pprof saved.
func (b *bench) readProfiles(ctx context.Context) ([]profileReport, error) {
	var out []profileReport
	for _, p := range []struct {
		name, file, index string
		groups            []share
	}{
		{fmt.Sprintf("warm, c=%d: CPU", b.cfg.Concurrency), "warm.cpu.pprof", "", warmGroups},
		{fmt.Sprintf("cache fill (cold cosign verifications, c=%d): CPU", b.cfg.Concurrency), "fill.cpu.pprof", "", coldGroups},
		{fmt.Sprintf("%d cached verdicts: live heap", b.cfg.Fill), "fill.heap.pprof", "inuse_space", heapGroups},
	} {
		file := filepath.Join(b.cfg.PprofDir, p.file)
		shares, total, err := profileShares(ctx, file, p.index, p.groups)
		if err != nil {
			return nil, err
		}
		out = append(out, profileReport{Name: p.name, File: file, Total: total, Shares: shares})
	}
	return out, nil
}
