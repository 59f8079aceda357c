// Package metrics is the webhook's Prometheus instrumentation, served on
// controller-runtime's registry beside its webhook latency metrics. It is
// the one Signet package that imports the Prometheus client: the policy
// engine, the registry layer and the AWS plumbing report through plain
// hooks (policy.Observer, oci.Options.Observe, awsclient.WithObserver) that
// this package implements, and the verdict cache and revocation checker
// keep plain counters that it reads at scrape time.
//
// It sits above pkg/policy (it reads Decisions and cache statistics) and
// is used only by the webhook: the CLI has nothing to scrape.
//
// docs/metrics.md lists every metric with its labels.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
)

// Label values that are not policy modes or HTTP statuses.
const (
	// ModeNoMatch labels images no policy governs (policy=""): the result
	// is what --no-match-policy decided.
	ModeNoMatch = "NoMatch"
	// CodeError labels registry requests that got no HTTP response.
	CodeError = "error"
	// HostOther replaces registry hosts beyond MaxHosts.
	HostOther = "other"
)

// MaxHosts bounds the host label of registry metrics. Images name any
// registry a Pod author likes; the first MaxHosts hosts keep their name
// and later ones are counted as HostOther, so a flood of made-up
// registries cannot grow the metrics without bound.
const MaxHosts = 64

// latencyBuckets span a cache hit (well under a millisecond) to the
// admission budget (seconds).
var latencyBuckets = []float64{.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics records what the webhook decides and what it spends on
// verification, registries and AWS. Its methods are safe for concurrent use.
type Metrics struct {
	reg             prometheus.Registerer
	registryTotal   atomic.Uint64 // every registry request, for RegistryRequests
	decisions       *prometheus.CounterVec
	failures        *prometheus.CounterVec
	breakGlass      *prometheus.CounterVec
	verifications   *prometheus.HistogramVec
	registryCalls   *prometheus.CounterVec
	registryLatency *prometheus.HistogramVec
	awsCalls        *prometheus.CounterVec
	awsLatency      *prometheus.HistogramVec
	hosts           boundedLabel
}

// New makes the metrics and registers them on reg (in the webhook,
// controller-runtime's metrics.Registry).
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_admission_decisions_total",
			Help: "Image decisions of admission requests: one per image and governing policy, with the policy's result (admitted, warned, denied, break-glass: failed but overridden by break-glass) and mode (Enforce, Warn); images no policy governs count once with policy=\"\" and mode=\"NoMatch\", images whose reference does not parse with policy=\"\" and mode=\"\".",
		}, []string{"result", "mode", "policy"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_admission_errors_total",
			Help: "Admission requests Signet could not decide because Signet itself failed (answered 503, not counted as denials), by reason: not_ready (policies not compiled yet), namespace_read (namespace labels unreadable), busy (no verification slot free before the deadline, --max-concurrent-verifications).",
		}, []string{"reason"}),
		breakGlass: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_break_glass_admissions_total",
			Help: "Objects admitted by break-glass (the signet.dev/break-glass annotation) despite failing a ClusterImagePolicy that allows it, by policy and namespace; a workload and each Pod it creates count once each. Dry runs are not counted.",
		}, []string{"policy", "namespace"}),
		verifications: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_verification_duration_seconds",
			Help:    "Time an admission waited for one authority's verification, by signature scheme (cosign, awssigner) and how the verdict cache answered (hit; miss: this request verified; shared: joined a verification in flight).",
			Buckets: latencyBuckets,
		}, []string{"scheme", "cache"}),
		registryCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_registry_requests_total",
			Help: "HTTP requests to OCI registries by host and status code; code=\"error\" when no response came.",
		}, []string{"host", "code"}),
		registryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_registry_request_duration_seconds",
			Help:    "Time to the response headers of HTTP requests to OCI registries, by host.",
			Buckets: latencyBuckets,
		}, []string{"host"}),
		awsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_aws_requests_total",
			Help: "AWS API calls (SDK retries included in one call) by service, operation and result: success, the AWS error code, or error when AWS gave no answer.",
		}, []string{"service", "operation", "result"}),
		awsLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_aws_request_duration_seconds",
			Help:    "Duration of AWS API calls, retries included, by service and operation.",
			Buckets: latencyBuckets,
		}, []string{"service", "operation"}),
		hosts: boundedLabel{max: MaxHosts, other: HostOther},
	}
	for _, c := range []prometheus.Collector{m.decisions, m.failures, m.breakGlass, m.verifications, m.registryCalls, m.registryLatency, m.awsCalls, m.awsLatency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// CacheSource is the verdict cache (*policy.VerdictCache).
type CacheSource interface {
	Stats() policy.CacheStats
	Len() int
}

// RevocationSource is the AWS Signer revocation checker (*awssigner.RevocationChecker).
type RevocationSource interface {
	Stats() awssigner.RevocationStats
}

// Collect registers collectors that read the verdict cache's and the
// revocation checker's counters at scrape time. Either may be nil.
func (m *Metrics) Collect(cache CacheSource, revocations RevocationSource) error {
	if cache != nil {
		if err := m.reg.Register(newCacheCollector(cache)); err != nil {
			return err
		}
	}
	if revocations != nil {
		if err := m.reg.Register(newRevocationCollector(revocations)); err != nil {
			return err
		}
	}
	return nil
}

// Decided counts the image decisions of one admission request.
func (m *Metrics) Decided(d policy.Decision) {
	for _, img := range d.Images {
		switch {
		case img.NoMatch:
			m.decisions.WithLabelValues(string(img.Verdict), ModeNoMatch, "").Inc()
		case len(img.Policies) == 0:
			// The reference did not parse: no policy could be chosen.
			m.decisions.WithLabelValues(string(img.Verdict), "", "").Inc()
		default:
			for _, p := range img.Policies {
				m.decisions.WithLabelValues(string(policyVerdict(p)), string(p.Mode), p.Policy).Inc()
			}
		}
	}
}

// Failed counts a request Signet could not decide (admission.Recorder).
func (m *Metrics) Failed(reason string) { m.failures.WithLabelValues(reason).Inc() }

// BrokeGlass counts an object admitted by break-glass despite a policy
// (admission.Recorder).
func (m *Metrics) BrokeGlass(policy, namespace string) {
	m.breakGlass.WithLabelValues(policy, namespace).Inc()
}

// policyVerdict is what one policy decided for an image, whatever the
// other governing policies decided.
func policyVerdict(p policy.PolicyResult) policy.Verdict {
	switch {
	case p.Satisfied:
		return policy.VerdictAdmitted
	case p.BrokenGlass:
		return policy.VerdictBreakGlass
	case p.Mode == v1alpha1.ModeWarn:
		return policy.VerdictWarned
	}
	return policy.VerdictDenied
}

// ObserveVerification implements policy.Observer.
func (m *Metrics) ObserveVerification(scheme string, cache policy.Outcome, took time.Duration) {
	m.verifications.WithLabelValues(scheme, string(cache)).Observe(took.Seconds())
}

// ObserveRegistry is the oci.Options.Observe hook.
func (m *Metrics) ObserveRegistry(host string, status int, err error, took time.Duration) {
	host = m.hosts.value(host)
	code := CodeError
	if err == nil && status > 0 {
		code = strconv.Itoa(status)
	}
	m.registryCalls.WithLabelValues(host, code).Inc()
	m.registryTotal.Add(1)
	m.registryLatency.WithLabelValues(host).Observe(took.Seconds())
}

// RegistryRequests is how many registry requests the process has made (what
// continuous validation reports per cycle).
func (m *Metrics) RegistryRequests() uint64 { return m.registryTotal.Load() }

// ObserveAWS is the awsclient.WithObserver hook.
func (m *Metrics) ObserveAWS(c awsclient.Call) {
	m.awsCalls.WithLabelValues(c.Service, c.Operation, c.Result).Inc()
	m.awsLatency.WithLabelValues(c.Service, c.Operation).Observe(c.Duration.Seconds())
}

// boundedLabel passes through the first max distinct values and maps
// later ones to other.
type boundedLabel struct {
	max   int
	other string

	mu   sync.Mutex
	seen map[string]bool
}

func (b *boundedLabel) value(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= b.max {
		return b.other
	}
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	b.seen[v] = true
	return v
}
