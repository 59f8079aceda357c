package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// fillResult is the memory of a fresh webhook holding Fill verdicts.
type fillResult struct {
	Start, Filled memory
	Entries       float64 // signet_verdict_cache_entries
	HeapInuse     float64 // go_memstats_heap_inuse_bytes
}

// fill signs Fill digests (signatures only; the images are never pushed,
// which cosign verification does not read), starts a fresh webhook, and
// admits each digest once: Fill cold verifications that leave Fill
// verified verdicts in the cache.
func (b *bench) fill(ctx context.Context) (row, fillResult, error) {
	n := b.cfg.Fill
	digests := randomDigests(b.fastRepo("cosign/fill"), n)
	b.logf("fill: signing %d digests (KMS Sign and a .sig tag each)", n)
	begin := time.Now()
	if err := parallel(ctx, n, 16, func(i int) error { return retry(func() error { return b.cosign.sign(ctx, digests[i]) }) }); err != nil {
		return row{}, fillResult{}, err
	}
	b.logf("signed in %s", time.Since(begin).Round(time.Millisecond))
	refs := make([]string, n)
	for i, d := range digests {
		refs[i] = d.String()
	}
	revs, err := b.reviews(refs, 10000)
	if err != nil {
		return row{}, fillResult{}, err
	}

	w, err := b.startWebhook("fill")
	if err != nil {
		return row{}, fillResult{}, err
	}
	defer w.Stop()
	var fr fillResult
	if fr.Start, err = w.memory(); err != nil {
		return row{}, fillResult{}, err
	}
	b.logf("fill: admitting %d distinct signed digests into a fresh webhook, c=%d", n, b.cfg.Concurrency)
	var res result
	m, err := b.phase(ctx, w, "fill", 10*time.Second, func() error {
		res = w.admit.fire(ctx, revs, b.cfg.Concurrency)
		return nil
	})
	if err != nil {
		return row{}, fillResult{}, err
	}
	if fr.Filled, err = w.memory(); err != nil {
		return row{}, fillResult{}, err
	}
	fr.Entries = m.after.sum("signet_verdict_cache_entries")
	fr.HeapInuse = m.after.sum("go_memstats_heap_inuse_bytes")
	if b.cfg.PprofDir != "" {
		if err := w.profile(ctx, "heap?gc=1", filepath.Join(b.cfg.PprofDir, "fill.heap.pprof")); err != nil {
			return row{}, fillResult{}, err
		}
	}
	r := row{
		Case: "cache fill", Conc: b.cfg.Concurrency, Setup: fmt.Sprintf("%d digests, fresh webhook, c=%d", n, b.cfg.Concurrency),
		Client: res.summary(), Verification: m.verificationBounds(), Under1ms: -1,
		Registry: fmt.Sprintf("%.1f requests per admission", m.registryRequests(b.referrersRegistry)/float64(n)),
	}
	b.logRow(r)
	b.logf("fill: %.0f verdicts cached; RSS %s (peak %s), %s at start; Go heap in use %s",
		fr.Entries, mib(fr.Filled.RSS), mib(fr.Filled.HWM), mib(fr.Start.RSS), mib(int64(fr.HeapInuse)))
	return r, fr, nil
}
