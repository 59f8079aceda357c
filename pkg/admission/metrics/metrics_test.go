package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/pkg/admission/metrics"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
)

const (
	dA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// stubVerifier verifies the digests it is told to; its Identity starts
// with a real scheme name, as the verifiers in pkg/policy/verify do.
type stubVerifier struct {
	identity string
	signed   map[string]bool
}

func (v stubVerifier) Verify(_ context.Context, img policy.Image) policy.Result {
	r := policy.Result{Image: img.Ref.String(), Authority: v.Describe(), Reason: policy.ReasonNoSignature, Cause: "no signature found"}
	if v.signed[img.Ref.DigestStr()] {
		r.Reason, r.Cause = policy.ReasonVerified, ""
	}
	return r
}
func (v stubVerifier) Identity() string { return v.identity }
func (v stubVerifier) Describe() string { return v.identity }

func compile(t *testing.T, name string, mode v1alpha1.PolicyMode, glob string, v policy.Verifier) *policy.Policy {
	t.Helper()
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: v1alpha1.ClusterImagePolicySpec{
		Mode: mode, Images: []v1alpha1.ImageGlob{{Glob: glob}},
		Authorities: []v1alpha1.Authority{{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/" + name}}},
	}}
	factory := func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) { return v, nil }
	p, errs := policy.Compile(context.Background(), cip, factory, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return p
}

// logLines captures what controller-runtime's loggers write.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// TestDecisionsThroughTheWebhook sends admission requests through
// controller-runtime's webhook handler, the Judge and the engine, then
// reads every metric back from the registry, and checks the decision's
// log line carries the request UID.
func TestDecisionsThroughTheWebhook(t *testing.T) {
	logs := &logLines{}
	logf.SetLogger(funcr.New(logs.write, funcr.Options{}))

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	cache := policy.NewVerdictCache(policy.CacheOptions{})
	revocations := fixedRevocations{BestEffortAdmitted: 3, Lookups: 10, CacheHits: 6, Unavailable: 4}
	if err := m.Collect(cache, revocations); err != nil {
		t.Fatal(err)
	}

	prod := compile(t, "prod", v1alpha1.ModeEnforce, "reg.example.com/prod/**", stubVerifier{identity: "cosign;key=SHA256:prod", signed: map[string]bool{dA: true}})
	rollout := compile(t, "rollout", v1alpha1.ModeWarn, "reg.example.com/**", stubVerifier{identity: "awssigner;profiles=rollout", signed: map[string]bool{}})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	judge := &admission.Judge{
		Engine:        &policy.Engine{Cache: cache, NoMatch: policy.NoMatchWarn, Observer: m},
		Policies:      func() []*policy.Policy { return []*policy.Policy{prod, rollout} },
		Namespaces:    fake.NewClientBuilder().WithScheme(scheme).WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}).Build(),
		VerifyTimeout: 5 * time.Second,
		Recorder:      m,
	}
	hook := ctrladmission.WithValidator[*corev1.Pod](scheme, admission.Validator[*corev1.Pod]{Judge: judge})

	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "signed", Image: "reg.example.com/prod/app@" + dA},
			{Name: "unsigned", Image: "reg.example.com/prod/app@" + dB},
			{Name: "elsewhere", Image: "docker.io/library/nginx:1.27"},
			{Name: "bad", Image: "reg.example.com/Prod/App"},
		}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"3f1c0c2e-0001", "3f1c0c2e-0002"} {
		resp := hook.Handle(context.Background(), ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: types.UID(uid), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Name: "app", Namespace: "team-a",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		}})
		if resp.Allowed || len(resp.Warnings) != 2 {
			t.Fatalf("response allowed=%v warnings=%q: want a denial with 2 warnings (the Warn policy on the admitted image, no-match)", resp.Allowed, resp.Warnings)
		}
		lines := logs.matching(`"admission decided"`)
		if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], `"requestID"="`+uid+`"`) {
			t.Fatalf("decision log lines %q do not carry requestID %s", lines, uid)
		}
	}

	m.ObserveRegistry("reg.example.com", 200, nil, 20*time.Millisecond)
	m.ObserveRegistry("reg.example.com", 404, nil, 10*time.Millisecond)
	m.ObserveRegistry("reg.example.com", 0, errors.New("connection refused"), time.Millisecond)
	m.ObserveAWS(awsclient.Call{Service: "KMS", Operation: "GetPublicKey", Result: awsclient.ResultSuccess, Duration: 30 * time.Millisecond})
	m.ObserveAWS(awsclient.Call{Service: "signer", Operation: "GetRevocationStatus", Result: "AccessDeniedException", Duration: 40 * time.Millisecond})

	// Two identical requests: each image counted twice per governing
	// policy; the first verifies (miss), the second hits the cache.
	want := map[string]float64{
		`signet_admission_decisions_total{mode="Enforce",policy="prod",result="admitted"}`:                           2,
		`signet_admission_decisions_total{mode="Enforce",policy="prod",result="denied"}`:                             2,
		`signet_admission_decisions_total{mode="Warn",policy="rollout",result="warned"}`:                             4,
		`signet_admission_decisions_total{mode="NoMatch",policy="",result="warned"}`:                                 2,
		`signet_admission_decisions_total{mode="",policy="",result="denied"}`:                                        2,
		`signet_verification_duration_seconds_count{cache="miss",scheme="cosign"}`:                                   2,
		`signet_verification_duration_seconds_count{cache="miss",scheme="awssigner"}`:                                2,
		`signet_verification_duration_seconds_count{cache="hit",scheme="cosign"}`:                                    2,
		`signet_verification_duration_seconds_count{cache="hit",scheme="awssigner"}`:                                 2,
		`signet_verdict_cache_lookups_total{result="hit"}`:                                                           4,
		`signet_verdict_cache_lookups_total{result="miss"}`:                                                          4,
		`signet_verdict_cache_lookups_total{result="shared"}`:                                                        0,
		`signet_verdict_cache_evictions_total`:                                                                       0,
		`signet_verdict_cache_entries`:                                                                               4,
		`signet_registry_requests_total{code="200",host="reg.example.com"}`:                                          1,
		`signet_registry_requests_total{code="404",host="reg.example.com"}`:                                          1,
		`signet_registry_requests_total{code="error",host="reg.example.com"}`:                                        1,
		`signet_registry_request_duration_seconds_count{host="reg.example.com"}`:                                     3,
		`signet_aws_requests_total{operation="GetPublicKey",result="success",service="KMS"}`:                         1,
		`signet_aws_requests_total{operation="GetRevocationStatus",result="AccessDeniedException",service="signer"}`: 1,
		`signet_aws_request_duration_seconds_count{operation="GetPublicKey",service="KMS"}`:                          1,
		`signet_aws_request_duration_seconds_count{operation="GetRevocationStatus",service="signer"}`:                1,
		`signet_revocation_lookups_total`:                                                                            10,
		`signet_revocation_cache_hits_total`:                                                                         6,
		`signet_revocation_unavailable_total`:                                                                        4,
		`signet_revocation_best_effort_admitted_total`:                                                               3,
	}
	got := gather(t, reg)
	if diff := diffSamples(got, want); diff != "" {
		t.Fatal(diff)
	}
}

func TestRegistryHostsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < metrics.MaxHosts+10; i++ {
		m.ObserveRegistry(fmt.Sprintf("r%d.example.com", i), 200, nil, time.Millisecond)
	}
	m.ObserveRegistry("r0.example.com", 200, nil, time.Millisecond) // known hosts keep their name
	got := gather(t, reg)
	hosts := 0
	for k := range got {
		if strings.HasPrefix(k, "signet_registry_requests_total{") {
			hosts++
		}
	}
	if hosts != metrics.MaxHosts+1 {
		t.Errorf("%d host series, want %d named plus %q", hosts, metrics.MaxHosts, metrics.HostOther)
	}
	if v := got[`signet_registry_requests_total{code="200",host="other"}`]; v != 10 {
		t.Errorf("other = %v, want 10", v)
	}
	if v := got[`signet_registry_requests_total{code="200",host="r0.example.com"}`]; v != 2 {
		t.Errorf("r0 = %v, want 2", v)
	}
}

func TestRegisteringTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("a second New on one registry succeeded")
	}
}

type fixedRevocations awssigner.RevocationStats

func (f fixedRevocations) Stats() awssigner.RevocationStats { return awssigner.RevocationStats(f) }

// gather flattens the registry into "name{label="value",...}" -> value;
// histograms contribute their _count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				name += "_count"
				v = float64(m.GetHistogram().GetSampleCount())
			}
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = v
		}
	}
	return out
}

// diffSamples reports every sample that differs, is missing or is extra.
func diffSamples(got, want map[string]float64) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			lines = append(lines, fmt.Sprintf("missing %s (want %v)", k, w))
		} else if g != w {
			lines = append(lines, fmt.Sprintf("%s = %v, want %v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("unexpected %s = %v", k, g))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestBreakGlassIsCountedByPolicyAndNamespace(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.BrokeGlass("prod", "team-a")
	m.BrokeGlass("prod", "team-a")
	m.BrokeGlass("prod", "team-b")
	broken := policy.Decision{Images: []policy.ImageDecision{{Verdict: policy.VerdictBreakGlass, Policies: []policy.PolicyResult{{Policy: "prod", Mode: v1alpha1.ModeEnforce, BrokenGlass: true}}}}}
	m.Decided(broken)
	want := map[string]float64{
		`signet_break_glass_admissions_total{namespace="team-a",policy="prod"}`:               2,
		`signet_break_glass_admissions_total{namespace="team-b",policy="prod"}`:               1,
		`signet_admission_decisions_total{mode="Enforce",policy="prod",result="break-glass"}`: 1,
	}
	got := gather(t, reg)
	if diff := diffSamples(got, want); diff != "" {
		t.Fatal(diff)
	}
}
