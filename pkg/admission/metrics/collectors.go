package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/pkg/policy"
)

// cacheCollector reads the verdict cache's counters at scrape time, so the
// cache stays free of metrics code and every scrape sees one consistent
// snapshot.
type cacheCollector struct {
	cache                       CacheSource
	lookups, evictions, entries *prometheus.Desc
}

func newCacheCollector(cache CacheSource) *cacheCollector {
	return &cacheCollector{
		cache: cache,
		lookups: prometheus.NewDesc("signet_verdict_cache_lookups_total",
			"Verdict cache lookups by result: hit; miss (this lookup verified); shared (joined a verification in flight). Hit ratio: hit / sum.",
			[]string{"result"}, nil),
		evictions: prometheus.NewDesc("signet_verdict_cache_evictions_total",
			"Verdicts dropped to keep the cache within its size bound.", nil, nil),
		entries: prometheus.NewDesc("signet_verdict_cache_entries",
			"Verdicts in the cache now.", nil, nil),
	}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lookups
	ch <- c.evictions
	ch <- c.entries
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.cache.Stats()
	// Every lookup that found nothing counts as a miss in CacheStats;
	// those that joined work in flight are also counted as Shared.
	ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(s.Hits), string(policy.OutcomeHit))
	ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(s.Misses-s.Shared), string(policy.OutcomeMiss))
	ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(s.Shared), string(policy.OutcomeShared))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(c.cache.Len()))
}

// revocationCollector reads the AWS Signer revocation checker's counters.
type revocationCollector struct {
	source                                      RevocationSource
	lookups, cacheHits, unavailable, bestEffort *prometheus.Desc
}

func newRevocationCollector(source RevocationSource) *revocationCollector {
	return &revocationCollector{
		source: source,
		lookups: prometheus.NewDesc("signet_revocation_lookups_total",
			"AWS Signer revocation checks asked for.", nil, nil),
		cacheHits: prometheus.NewDesc("signet_revocation_cache_hits_total",
			"AWS Signer revocation checks answered from the revocation cache.", nil, nil),
		unavailable: prometheus.NewDesc("signet_revocation_unavailable_total",
			"GetRevocationStatus calls that got no answer (error or timeout).", nil, nil),
		bestEffort: prometheus.NewDesc("signet_revocation_best_effort_admitted_total",
			"Verifications that admitted an image in BestEffort revocation mode although AWS Signer could not be asked.", nil, nil),
	}
}

func (c *revocationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lookups
	ch <- c.cacheHits
	ch <- c.unavailable
	ch <- c.bestEffort
}

func (c *revocationCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.source.Stats()
	ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(s.Lookups))
	ch <- prometheus.MustNewConstMetric(c.cacheHits, prometheus.CounterValue, float64(s.CacheHits))
	ch <- prometheus.MustNewConstMetric(c.unavailable, prometheus.CounterValue, float64(s.Unavailable))
	ch <- prometheus.MustNewConstMetric(c.bestEffort, prometheus.CounterValue, float64(s.BestEffortAdmitted))
}
