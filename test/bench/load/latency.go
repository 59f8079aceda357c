package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// rtt is the round-trip time of one registry, measured with sequential
// manifest GETs over one kept-alive connection.
type rtt struct {
	Registry string
	Kind     string
	Summary  Summary
}

// measureRTT measures each registry the cases use, reading one of their
// images' manifest again and again, after a few reads that open the
// connection.
func (b *bench) measureRTT(ctx context.Context, imgs *images) ([]rtt, error) {
	var out []rtt
	for _, r := range []struct {
		kind string
		ref  string
	}{
		{"CNCF distribution: warm, cold, mixed", imgs.cosignCold1[0]},
		{"go-containerregistry: cache fill", imgs.fastProbe},
		{"go-containerregistry, in the harness: burst", imgs.burstRef},
	} {
		d, err := name.NewDigest(r.ref, name.Insecure)
		if err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", d.RegistryStr(), d.RepositoryStr(), d.DigestStr())
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		lat := make([]time.Duration, 0, b.cfg.RTT)
		begin := time.Now()
		for i := 0; i < b.cfg.RTT+10; i++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json")
			t := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET %s: HTTP %d %w", url, resp.StatusCode, err)
			}
			if i >= 10 { // the first requests open the connection
				lat = append(lat, time.Since(t))
			}
		}
		s := summarize(lat, time.Since(begin))
		b.logf("registry %s (%s): manifest GET p50 %s ms, p99 %s ms", d.RegistryStr(), r.kind, ms(s.P50), ms(s.P99))
		out = append(out, rtt{Registry: d.RegistryStr(), Kind: r.kind, Summary: s})
	}
	return out, nil
}

// warm admits one signed digest whose verdict is cached, conc requests at
// a time, for -warm-for.
func (b *bench) warm(ctx context.Context, w *webhook, ref string, conc int) (row, error) {
	refs := make([]string, 64)
	for i := range refs {
		refs[i] = ref
	}
	revs, err := b.reviews(refs, 0)
	if err != nil {
		return row{}, err
	}
	// Warm up: the verdict, the namespace informer, TLS connections.
	if r := w.admit.fire(ctx, revs, 4); len(r.errs) > 0 {
		return row{}, fmt.Errorf("warm-up: %w", r.errs[0])
	}
	b.logf("warm: one signed digest, verdict cached, %d in flight for %s", conc, b.cfg.WarmFor)
	var res result
	profile := ""
	if conc > 1 {
		profile = "warm"
	}
	m, err := b.phase(ctx, w, profile, b.cfg.WarmFor, func() error {
		res = w.admit.fireFor(ctx, revs, conc, b.cfg.WarmFor)
		return nil
	})
	if err != nil {
		return row{}, err
	}
	r := row{
		Case: "warm", Conc: conc, Setup: fmt.Sprintf("1 digest, verdict cached, c=%d, %s", conc, b.cfg.WarmFor),
		Client: res.summary(), Verification: m.verificationBounds(), Under1ms: m.under1ms(),
		Registry: fmt.Sprintf("%.0f requests", m.registryRequests(b.registry)),
	}
	b.logRow(r)
	return r, nil
}

// cold admits each of refs (signed digests the webhook never saw) once,
// conc at a time: one verification each.
func (b *bench) cold(ctx context.Context, w *webhook, caseName, scheme string, refs []string, conc int) (row, error) {
	revs, err := b.reviews(refs, 1000)
	if err != nil {
		return row{}, err
	}
	b.logf("%s: %d distinct signed digests, never seen, c=%d", caseName, len(refs), conc)
	signerCalls := b.signerSrv.Calls()
	var res result
	m, err := b.phase(ctx, w, "", 0, func() error {
		res = w.admit.fire(ctx, revs, conc)
		return nil
	})
	if err != nil {
		return row{}, err
	}
	misses := m.verifications("miss")
	perAdmission := m.registryRequests(b.registry) / float64(len(refs))
	reg := fmt.Sprintf("%.1f requests per admission", perAdmission)
	if scheme == "awssigner" {
		reg += fmt.Sprintf("; %.1f Signer GetRevocationStatus per admission", float64(b.signerSrv.Calls()-signerCalls)/float64(len(refs)))
	}
	if int(misses) != len(refs) {
		reg += fmt.Sprintf(" (%.0f verifications for %d digests)", misses, len(refs))
	}
	r := row{
		Case: caseName, Conc: conc, Setup: fmt.Sprintf("%d digests, cache empty, c=%d", len(refs), conc),
		Client: res.summary(), Verification: m.verificationBounds(), Under1ms: -1, Registry: reg,
		RegistryPerAdmission: perAdmission,
	}
	b.logRow(r)
	return r, nil
}
