package main

import (
	"context"
	"fmt"
	"strings"
)

// burstResult is what the registry and the webhook saw of the burst.
type burstResult struct {
	// AtRegistry are the registry's own request counts by kind during
	// the burst (test/servers/registry, serving only this run).
	AtRegistry map[string]int
	// SignatureFetches are the reads of the image's signature: GETs of
	// its .sig manifest, counted at the registry.
	SignatureFetches int
	// WebhookRequests is every request the webhook sent to the registry,
	// by its own metrics.
	WebhookRequests float64
	// Verifications by verdict cache outcome (miss: did the work; shared:
	// joined it; hit: answered from the cache).
	Miss, Shared, Hit float64
}

func (b *bench) burst(ctx context.Context, w *webhook, imgs *images) (row, burstResult, error) {
	refs := make([]string, b.cfg.Burst)
	for i := range refs {
		refs[i] = imgs.burstRef
	}
	revs, err := b.reviews(refs, 5000)
	if err != nil {
		return row{}, burstResult{}, err
	}
	b.logf("burst: %d concurrent admissions of one new signed image", len(revs))
	before := b.burstRegistry.Requests()
	var res result
	m, err := b.phase(ctx, w, "", 0, func() error {
		res = w.admit.burst(ctx, revs)
		return nil
	})
	if err != nil {
		return row{}, burstResult{}, err
	}
	after := b.burstRegistry.Requests()
	br := burstResult{AtRegistry: map[string]int{}, WebhookRequests: m.registryRequests(b.burstRegistryHost),
		Miss: m.verifications("miss"), Shared: m.verifications("shared"), Hit: m.verifications("hit")}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			br.AtRegistry[k] = d
		}
	}
	br.SignatureFetches = br.AtRegistry["manifest-get"]
	r := row{
		Case: "burst", Conc: len(revs), Setup: fmt.Sprintf("%d concurrent admissions of 1 new digest", len(revs)),
		Client: res.summary(), Verification: m.verificationBounds(), Under1ms: -1,
		Registry: fmt.Sprintf("%d signature fetch(es) at the registry (%s); verifications: %.0f miss, %.0f shared, %.0f hit",
			br.SignatureFetches, countsString(br.AtRegistry), br.Miss, br.Shared, br.Hit),
	}
	b.logRow(r)
	return r, br, nil
}

func countsString(m map[string]int) string {
	var parts []string
	for _, k := range []string{"ping", "manifest-head", "manifest-get", "blob-get", "referrers", "tag-list", "manifest-put", "other"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
