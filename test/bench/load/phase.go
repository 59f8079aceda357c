package main

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// measured is what the webhook reports about one phase.
type measured struct {
	before, after metrics
}

// phase runs f between two scrapes of the webhook's metrics and collects
// its log's decisions, with a CPU profile (-pprof) named profile.
func (b *bench) phase(ctx context.Context, w *webhook, profile string, profileFor time.Duration, f func() error) (*measured, error) {
	m := &measured{}
	var err error
	if m.before, err = scrape(ctx, w.MetricsURL); err != nil {
		return nil, err
	}
	var prof errgroup.Group
	if profile != "" && w.pprofAddr != "" {
		secs := max(1, int(math.Round(profileFor.Seconds())))
		file := filepath.Join(b.cfg.PprofDir, profile+".cpu.pprof")
		prof.Go(func() error { return w.profile(ctx, "profile?seconds="+strconv.Itoa(secs), file) })
		time.Sleep(50 * time.Millisecond) // the profile starts before the load
	}
	if err := f(); err != nil {
		return nil, err
	}
	if err := prof.Wait(); err != nil {
		return nil, err
	}
	if m.after, err = scrape(ctx, w.MetricsURL); err != nil {
		return nil, err
	}
	return m, nil
}

// under1ms is the fraction of the pods handler's requests in the phase
// that controller-runtime's latency histogram counts at or under 1 ms.
func (m *measured) under1ms() float64 {
	const name = "controller_runtime_webhook_latency_seconds"
	sel := `webhook="/validate/pods"`
	total := delta(m.before, m.after, name+"_count", sel)
	if total <= 0 {
		return -1
	}
	for series := range m.after {
		if !strings.HasPrefix(series, name+"_bucket{") || !strings.Contains(series, sel) {
			continue
		}
		_, le, ok := strings.Cut(series, `le="`)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
		if err != nil || math.Abs(bound-0.001) > 1e-6 {
			continue
		}
		return (m.after[series] - m.before[series]) / total
	}
	return -1
}

// verificationBounds reads signet_verification_duration_seconds (every
// scheme and cache outcome) over the phase and returns the upper bounds
// of the buckets holding its median and its 99th percentile.
func (m *measured) verificationBounds() [2]time.Duration {
	const name = "signet_verification_duration_seconds_bucket{"
	counts := map[float64]float64{}
	for series, v := range m.after {
		if !strings.HasPrefix(series, name) {
			continue
		}
		_, le, ok := strings.Cut(series, `le="`)
		if !ok {
			continue
		}
		le = strings.TrimSuffix(le, `"}`)
		bound := math.Inf(1)
		if le != "+Inf" {
			var err error
			if bound, err = strconv.ParseFloat(le, 64); err != nil {
				continue
			}
		}
		counts[bound] += v - m.before[series]
	}
	bounds := make([]float64, 0, len(counts))
	for b := range counts {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	var out [2]time.Duration
	if len(bounds) == 0 || counts[bounds[len(bounds)-1]] <= 0 {
		return out
	}
	total := counts[bounds[len(bounds)-1]] // buckets are cumulative
	for i, q := range []float64{0.5, 0.99} {
		for _, b := range bounds {
			if counts[b] >= q*total {
				out[i] = time.Duration(b * float64(time.Second))
				if math.IsInf(b, 1) {
					out[i] = time.Duration(math.MaxInt64)
				}
				break
			}
		}
	}
	return out
}

// registryRequests is how many requests the webhook sent to registry
// during the phase, by its own metrics.
func (m *measured) registryRequests(registry string) float64 {
	return delta(m.before, m.after, "signet_registry_requests_total", `host="`+registry+`"`)
}

func (m *measured) verifications(cache string) float64 {
	return delta(m.before, m.after, "signet_verification_duration_seconds_count", `cache="`+cache+`"`)
}
