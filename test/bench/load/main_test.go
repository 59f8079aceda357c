package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/test/stack"
)

func TestPercentileIsNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tt := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"median of an odd count", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of an even count is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"a tiny p is the min", hundred, 0.1, 1 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	s := summarize(lat, 2*time.Second)
	if s.N != 4 || s.P50 != 2*time.Millisecond || s.P99 != 5*time.Millisecond || s.Max != 5*time.Millisecond {
		t.Fatalf("summary %+v", s)
	}
	if s.Throughput() != 2 {
		t.Fatalf("throughput %v, want 2/s", s.Throughput())
	}
}

func TestParseMetricsAndHandlerShare(t *testing.T) {
	scrape := func(under, total float64) metrics {
		m, err := parseMetrics(strings.NewReader(strings.Join([]string{
			`# HELP controller_runtime_webhook_latency_seconds Histogram of the latency of processing admission requests`,
			`controller_runtime_webhook_latency_seconds_bucket{webhook="/validate/pods",le="0.00010000000000000002"} 0`,
			`controller_runtime_webhook_latency_seconds_bucket{webhook="/validate/pods",le="0.0010000000000000002"} ` + fmtFloat(under),
			`controller_runtime_webhook_latency_seconds_bucket{webhook="/validate/pods",le="+Inf"} ` + fmtFloat(total),
			`controller_runtime_webhook_latency_seconds_count{webhook="/validate/pods"} ` + fmtFloat(total),
			`controller_runtime_webhook_latency_seconds_count{webhook="/validate/deployments"} 7`,
			`signet_registry_requests_total{code="200",host="127.0.0.1:5000"} ` + fmtFloat(total*3),
			`signet_registry_requests_total{code="404",host="127.0.0.1:5000"} 1`,
			`signet_registry_requests_total{code="200",host="127.0.0.1:6000"} 100`,
		}, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before, after := scrape(10, 10), scrape(10+99, 10+100)
	m := &measured{before: before, after: after}
	if got := m.under1ms(); got != 0.99 {
		t.Fatalf("under1ms = %v, want 0.99", got)
	}
	if got := m.registryRequests("127.0.0.1:5000"); got != 300 {
		t.Fatalf("registry requests = %v, want 300 (both codes, that host only)", got)
	}
	if got := after.sum("controller_runtime_webhook_latency_seconds_count"); got != 117 {
		t.Fatalf("sum over every series = %v, want 117", got)
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestShellCommand(t *testing.T) {
	got := shellCommand([]string{"go", "run", "./test/bench/load", "-note", "before the fix's change", "-quick"})
	want := `go run ./test/bench/load -note 'before the fix'\''s change' -quick`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParseTop(t *testing.T) {
	out := `File: webhook
Type: cpu
Duration: 5s, Total samples = 6.62s (132.40%)
Showing nodes accounting for 1.78s, 26.89% of 6.62s total
      flat  flat%   sum%        cum   cum%
         0     0%     0%      4.48s 67.67%  net/http.(*http2serverConn).runHandler
     0.01s  0.15%  0.45%      3.39s 51.21%  k8s.io/apimachinery/pkg/runtime/serializer/json.(*Serializer).Decode
         0     0% 33.69%      0.16s  2.45%  github.com/go-logr/logr.Logger.WithValues (inline)
`
	cum, total := parseTop(out)
	if total != "6.62s" {
		t.Fatalf("total %q", total)
	}
	if cum["k8s.io/apimachinery/pkg/runtime/serializer/json.(*Serializer).Decode"] != 51.21 || cum["github.com/go-logr/logr.Logger.WithValues"] != 2.45 {
		t.Fatalf("cum %v", cum)
	}
}

func TestTablesRender(t *testing.T) {
	r := &report{
		Cfg: &config{Concurrency: 16, Burst: 500, Fill: 10000},
		Rows: []row{
			{Case: "warm", Conc: 1, Setup: "1 digest", Client: summarize([]time.Duration{300 * time.Microsecond}, time.Second), Under1ms: 1},
			{Case: "warm", Conc: 16, Setup: "1 digest", Client: summarize([]time.Duration{2 * time.Millisecond}, time.Millisecond/10), Under1ms: 0.8},
			{Case: "cold cosign-KMS", Conc: 1, Setup: "200 digests", Client: summarize([]time.Duration{3 * time.Millisecond}, time.Second), Under1ms: -1},
			{Case: "burst", Conc: 500, Setup: "500", Client: summarize([]time.Duration{60 * time.Millisecond}, time.Second), Under1ms: -1},
		},
		RTT:   []rtt{{Registry: "127.0.0.1:5000", Kind: "distribution", Summary: summarize([]time.Duration{150 * time.Microsecond}, time.Second)}},
		Burst: burstResult{SignatureFetches: 1, Miss: 1, Shared: 200, Hit: 299},
		Fill:  fillResult{Start: memory{RSS: 60 << 20}, Filled: memory{RSS: 90 << 20, HWM: 100 << 20}, Entries: 10000},
	}
	r.judge()
	var out bytes.Buffer
	if err := r.writeTables(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| warm | 1 digest | 0.300 | 0.300 | 0.300 | 0.300 | 1 | 100.0% |",
		"| cold cosign-KMS | 200 digests | 3.00 | 3.00 | 3.00 | 3.00 | 1 | – |",
		"| warm: p99 ≤ 1 ms in the handler | c=1: 100.00% of requests ≤ 1 ms",
		"| warm: ≥ 5,000 admissions/s | 10000/s (c=16) | **pass** |",
		"| cold cosign-KMS: p50 ≤ 5 ms | 3.00 ms (c=1; 20.0× the registry round trip) | **pass** |",
		"| burst of 500: one signature fetch | 1 at the registry; 1 verification (cache miss), 200 joined it, 299 cache hits | **pass** |",
		"| RSS ≤ 128 MiB with 10000 cached verdicts | peak 100.0 MiB, 90.0 MiB after the fill (10000 verdicts cached) | **pass** |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, out.String())
		}
	}
}

// TestQuick runs every case with small counts against the local stack:
// the table comes out, nothing fails, and the burst fetches the
// signature once. Its timings are not judged: `make test` runs packages
// side by side on the same cores.
func TestQuick(t *testing.T) {
	stack.Load(t) // exports the stack's variables, or fails saying how to start it
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	doc := filepath.Join(t.TempDir(), "performance.md")
	var out bytes.Buffer
	rep, err := run(ctx, []string{"-quick", "-write", doc}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, r := range rep.Rows {
		if r.Client.Errors > 0 || r.Client.N == 0 {
			t.Errorf("%s (c=%d): %d answered, %d errors: %v", r.Case, r.Conc, r.Client.N, r.Client.Errors, r.Client.ErrorSamples)
		}
	}
	if len(rep.Rows) != 8 {
		t.Errorf("%d rows, want 8 (warm ×2, cold ×4, burst, cache fill)", len(rep.Rows))
	}
	if rep.Burst.SignatureFetches != 1 || rep.Burst.AtRegistry["blob-get"] != 1 || rep.Burst.Miss != 1 ||
		rep.Burst.Miss+rep.Burst.Shared+rep.Burst.Hit != float64(rep.Cfg.Burst) {
		t.Errorf("burst of %d: %d signature fetches at the registry (%v), verifications %v miss, %v shared, %v hit; want one fetch and one miss",
			rep.Cfg.Burst, rep.Burst.SignatureFetches, rep.Burst.AtRegistry, rep.Burst.Miss, rep.Burst.Shared, rep.Burst.Hit)
	}
	if rep.Mixed == nil || !rep.Mixed.Pinned || rep.Mixed.Calls["/validate/pods"] < float64(rep.Cfg.Replicas) {
		t.Errorf("rollout: %+v", rep.Mixed)
	}
	if rep.Fill.Entries != float64(rep.Cfg.Fill) || rep.Fill.Filled.HWM == 0 {
		t.Errorf("cache fill: %v verdicts cached, peak RSS %d; want %d", rep.Fill.Entries, rep.Fill.Filled.HWM, rep.Cfg.Fill)
	}
	// Continuous validation: each distinct digest verified once however
	// many Pods share it; one in four digests is unsigned.
	if a := rep.Audit; a == nil || a.Pods != 400 || a.Digests != 40 || a.Verifications != uint64(a.Digests) || a.RegistryRequests == 0 || a.AtRegistry == 0 ||
		a.PeakRSS == 0 || a.Cycle <= 0 || a.Counts["verified"] != 300 || a.Counts["violation"] != 100 || len(a.Counts) != 2 {
		t.Errorf("audit case: %+v; want 400 Pods, 40 verifications, 300 verified and 100 in violation, and every number measured", rep.Audit)
	}
	for _, want := range []string{"| warm | 1 digest, verdict cached, c=1", "| burst | 100 concurrent admissions", "### Targets", "not judged (-quick)", "### Continuous validation", "| 400 | 40 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the printed tables lack %q", want)
		}
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## The run", "- Commit: `", "## Method", "## What dominates each case", "| cold AWS Signer |"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the written doc lacks %q", want)
		}
	}
}

func TestVerificationBounds(t *testing.T) {
	scrape := func(lines ...string) metrics {
		m, err := parseMetrics(strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	bucket := func(scheme, le string, v int) string {
		return `signet_verification_duration_seconds_bucket{cache="miss",scheme="` + scheme + `",le="` + le + `"} ` + strconv.Itoa(v)
	}
	before := scrape(bucket("cosign", "0.001", 5), bucket("cosign", "0.005", 5), bucket("cosign", "+Inf", 5))
	// 100 new verifications: 40 under 1 ms, 59 more under 5 ms (cosign
	// and awssigner together), one over 5 ms.
	after := scrape(
		bucket("cosign", "0.001", 45), bucket("cosign", "0.005", 75), bucket("cosign", "+Inf", 75),
		bucket("awssigner", "0.001", 0), bucket("awssigner", "0.005", 29), bucket("awssigner", "+Inf", 30),
	)
	got := (&measured{before: before, after: after}).verificationBounds()
	if got != [2]time.Duration{5 * time.Millisecond, 5 * time.Millisecond} {
		t.Fatalf("bounds %v, want p50 ≤ 5ms, p99 ≤ 5ms", got)
	}
	after = scrape(bucket("cosign", "0.001", 100), bucket("cosign", "0.005", 103), bucket("cosign", "+Inf", 105))
	got = (&measured{before: before, after: after}).verificationBounds()
	if got[0] != time.Millisecond || got[1] != time.Duration(math.MaxInt64) {
		t.Fatalf("bounds %v, want p50 ≤ 1ms, p99 over the last bound", got)
	}
}

// TestColdFloors: a cold case's floor is its registry requests times the
// registry's round trip, plus the signature check, plus (for AWS Signer)
// the revocation call; the table states it and the multiple.
func TestColdFloors(t *testing.T) {
	r := &report{Cfg: &config{Concurrency: 16}, RTT: []rtt{{Registry: "127.0.0.1:5000", Summary: Summary{P50: time.Millisecond}}},
		Floors: floors{CosignCheck: Summary{P50: 100 * time.Microsecond}, SignerCheck: Summary{P50: 500 * time.Microsecond}, Revocation: Summary{P50: 300 * time.Microsecond}},
		Rows: []row{
			{Case: "cold cosign-KMS", Conc: 1, Client: Summary{P50: 6200 * time.Microsecond}, RegistryPerAdmission: 2},
			{Case: "cold AWS Signer", Conc: 1, Client: Summary{P50: 9600 * time.Microsecond}, RegistryPerAdmission: 4},
		}}
	got := r.coldFloors()
	if len(got) != 2 || got[0].Floor() != 2100*time.Microsecond || got[1].Floor() != 4800*time.Microsecond {
		t.Fatalf("floors %+v", got)
	}
	if m := got[1].Multiple(); m != 2 {
		t.Fatalf("Signer multiple %v, want 2", m)
	}
	var out bytes.Buffer
	if err := r.writeTables(&out); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"| cold cosign-KMS | 2.0 | 1.00 | 0.100 | – | 2.10 | 6.20 | 3.0× |",
		"| cold AWS Signer | 4.0 | 1.00 | 0.500 | 0.300 | 4.80 | 9.60 | 2.0× |",
	} {
		if !strings.Contains(out.String(), line) {
			t.Fatalf("the tables lack %q:\n%s", line, out.String())
		}
	}
}
