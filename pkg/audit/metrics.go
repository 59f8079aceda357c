package audit

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports what continuous validation found in its last cycle.
type Metrics struct {
	images        *prometheus.GaugeVec
	duration      prometheus.Histogram
	verifications prometheus.Gauge
	registry      prometheus.Gauge
	failures      prometheus.Counter
}

// NewMetrics registers the metrics on reg (controller-runtime's registry in
// the webhook).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		images: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "signet_running_images",
			Help: "Images of running Pods by state (verified, violation, unverifiable, ungoverned), governing ClusterImagePolicy (empty: none) and namespace, as the last continuous validation cycle found them.",
		}, []string{"state", "policy", "namespace"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_audit_cycle_duration_seconds",
			Help:    "Time one continuous validation cycle took.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
		}),
		verifications: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_audit_cycle_verifications",
			Help: "Signature verifications the last continuous validation cycle made (verdicts still cached are not verified again).",
		}),
		registry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_audit_cycle_registry_requests",
			Help: "Registry requests made while the last continuous validation cycle ran.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_audit_cycle_failures_total",
			Help: "Continuous validation cycles that could not list Pods or Namespaces.",
		}),
	}
	for _, c := range []prometheus.Collector{m.images, m.duration, m.verifications, m.registry, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe replaces the running-image gauges with rep's counts.
func (m *Metrics) observe(rep *Report) {
	if m == nil {
		return
	}
	m.images.Reset()
	for _, p := range rep.Pods {
		for _, img := range p.Images {
			if len(img.Decision.Policies) == 0 {
				m.images.WithLabelValues(string(img.State), "", p.Namespace).Inc()
			}
			for _, pr := range img.Decision.Policies {
				m.images.WithLabelValues(string(policyState(pr)), pr.Policy, p.Namespace).Inc()
			}
		}
	}
	m.duration.Observe(rep.Duration.Seconds())
	m.verifications.Set(float64(rep.Verifications))
	m.registry.Set(float64(rep.RegistryRequests))
}

func (m *Metrics) failed() {
	if m != nil {
		m.failures.Inc()
	}
}
