package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"text/template"
	"time"
)

// report is everything one run measured.
type report struct {
	Cfg        *config
	Facts      facts
	RTT        []rtt
	Rows       []row
	Burst      burstResult
	Mixed      *mixedResult
	MainMemory memory
	Fill       fillResult
	Wide       []wideResult
	Audit      *auditResult `json:",omitempty"`
	// Floors are the parts of the cold cases' physical floor; CLI is
	// the CLI case.
	Floors   floors
	CLI      *cliResult `json:",omitempty"`
	Targets  []target
	Duration time.Duration
	Profiles []profileReport
	// Before is an earlier run (-before), shown beside this one.
	Before *report `json:",omitempty"`
}

// profileReport is where one saved profile's time or memory went.
type profileReport struct {
	Name   string // "warm (c=16) CPU"
	File   string
	Total  string
	Shares []share
}

// target is one of issue 8's performance targets and how this run did.
type target struct {
	What     string
	Measured string
	Pass     bool
}

// facts say what produced the numbers.
type facts struct {
	Command string
	Commit  string
	// Dirty lists the paths `git status --porcelain` reports: the run
	// measured the working tree, not only the commit.
	Dirty  []string
	Date   string
	Go     string
	Cores  int
	CPU    string
	Kernel string
	// Webhook is the binary measured: built from the working tree, or
	// given with -webhook; Note is -note, describing it.
	Webhook string
	Note    string
	// Load is /proc/loadavg's 1, 5 and 15 minute averages when the run
	// started and when it ended: other work on the machine shows here.
	LoadStart, LoadEnd string
}

// shellCommand joins args as a shell would need them typed.
func shellCommand(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~!{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machineFacts(root string, args []string) facts {
	f := facts{
		Command:   shellCommand(append([]string{"go", "run", "./test/bench/load"}, args...)),
		Date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Go:        runtime.Version(),
		Cores:     runtime.NumCPU(),
		LoadStart: loadavg(),
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimRight(string(out), "\n")
	}
	f.Commit = git("rev-parse", "HEAD")
	for _, line := range strings.Split(git("status", "--porcelain"), "\n") {
		if len(line) > 3 {
			f.Dirty = append(f.Dirty, strings.TrimSpace(line[3:]))
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				f.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		f.Kernel = strings.TrimSpace(string(b))
	}
	return f
}

// Row is the row of a case at a concurrency (0: any), or nil.
func (r *report) Row(caseName string, conc int) *row {
	for i := range r.Rows {
		if r.Rows[i].Case == caseName && (conc == 0 || r.Rows[i].Conc == conc) {
			return &r.Rows[i]
		}
	}
	return nil
}

// judge compares the run with issue 8's targets.
func (r *report) judge() {
	const mib128 = 128 << 20
	if w := r.Row("warm", 1); w != nil {
		r.Targets = append(r.Targets,
			target{"warm: p99 ≤ 1 ms in the handler", fmt.Sprintf("c=1: %.2f%% of requests ≤ 1 ms in controller-runtime's handler histogram (client-side p99 %s ms)",
				100*w.Under1ms, ms(w.Client.P99)), w.Under1ms >= 0.99 && w.Client.Errors == 0})
	}
	if w := r.Row("warm", r.Cfg.Concurrency); w != nil {
		r.Targets = append(r.Targets,
			target{"warm: ≥ 5,000 admissions/s", fmt.Sprintf("%.0f/s (c=%d)", w.Client.Throughput(), r.Cfg.Concurrency), w.Client.Throughput() >= 5000 && w.Client.Errors == 0})
	}
	if c := r.Row("cold cosign-KMS", 1); c != nil {
		r.Targets = append(r.Targets,
			target{"cold cosign-KMS: p50 ≤ 5 ms", fmt.Sprintf("%s ms (c=1; %.1f× the registry round trip)", ms(c.Client.P50), r.ratioToRTT(c.Client.P50)), c.Client.P50 <= 5*time.Millisecond && c.Client.Errors == 0},
			target{"cold cosign-KMS: p99 ≤ 20 ms", fmt.Sprintf("%s ms (c=1)", ms(c.Client.P99)), c.Client.P99 <= 20*time.Millisecond && c.Client.Errors == 0})
	}
	for _, f := range r.coldFloors() {
		r.Targets = append(r.Targets, target{f.Case + ": p50 ≤ 2× the floor", fmt.Sprintf("%s ms = %.1f× the floor of %s ms (c=1)", ms(f.P50), f.Multiple(), ms(f.Floor())),
			f.Multiple() > 0 && f.Multiple() <= 2})
	}
	if c := r.CLI; c != nil {
		r.Targets = append(r.Targets, target{"signet verify, 1 image, fresh process: p50 ≤ 35 ms", fmt.Sprintf("%s ms (%d runs)", ms(c.One.P50), c.Runs), c.One.P50 <= 35*time.Millisecond})
	}
	if b := r.Row("burst", 0); b != nil {
		r.Targets = append(r.Targets,
			target{fmt.Sprintf("burst of %d: one signature fetch", r.Cfg.Burst), fmt.Sprintf("%d at the registry; %.0f verification (cache miss), %.0f joined it, %.0f cache hits",
				r.Burst.SignatureFetches, r.Burst.Miss, r.Burst.Shared, r.Burst.Hit), r.Burst.SignatureFetches == 1 && r.Burst.Miss == 1},
			target{fmt.Sprintf("burst of %d: no request over 1 s", r.Cfg.Burst), fmt.Sprintf("max %s ms, %d errors", ms(b.Client.Max), b.Client.Errors),
				b.Client.Max <= time.Second && b.Client.Errors == 0})
	}
	r.Targets = append(r.Targets, target{fmt.Sprintf("RSS ≤ 128 MiB with %d cached verdicts", r.Cfg.Fill),
		fmt.Sprintf("peak %s, %s after the fill (%.0f verdicts cached)", mib(r.Fill.Filled.HWM), mib(r.Fill.Filled.RSS), r.Fill.Entries),
		r.Fill.Filled.HWM <= mib128 && int(r.Fill.Entries) == r.Cfg.Fill})
	if len(r.Wide) > 0 {
		// Issue 13: refused in well under a second, within the chart's
		// memory limit (256 MiB), with no registry traffic.
		w := r.Wide[0]
		r.Targets = append(r.Targets, target{fmt.Sprintf("a Pod of %d images: refused in < 500 ms, no registry request, peak RSS ≤ 256 MiB", wideImages),
			fmt.Sprintf("p50 %s ms, max %s ms over %d sends; %d registry requests; peak %s", ms(w.Client.P50), ms(w.Client.Max), w.Sends, w.Registry, mib(w.Memory.HWM)),
			w.Client.Max < 500*time.Millisecond && w.Registry == 0 && w.Memory.HWM <= 256<<20 && w.Client.Errors == 0})
	}
	if a := r.Audit; a != nil {
		// Issue 15: Pods sharing a digest share its verification.
		r.Targets = append(r.Targets, target{fmt.Sprintf("continuous validation: a cycle over %d Pods sharing %d digests makes ≤ %d verifications", a.Pods, a.Digests, a.Digests),
			fmt.Sprintf("%d verifications, cycle %s, peak RSS %s", a.Verifications, a.Cycle.Round(time.Millisecond), mib(a.PeakRSS)), a.Verifications <= uint64(a.Digests)})
	}
}

// measure is one line of the before/after comparison.
type measure struct{ Name, Value string }

// keyMeasures are the numbers a before/after comparison shows.
func (r *report) keyMeasures() []measure {
	var out []measure
	add := func(name, value string) { out = append(out, measure{name, value}) }
	for _, row := range r.Rows {
		label := fmt.Sprintf("%s, c=%d", row.Case, row.Conc)
		switch row.Case {
		case "warm":
			add(label+": p99 / ≤ 1 ms in the handler / admissions/s", fmt.Sprintf("%s ms / %s / %.0f", ms(row.Client.P99), pctString(row.Under1ms), row.Client.Throughput()))
		case "burst":
			add(label+": p50 / max", fmt.Sprintf("%s / %s ms", ms(row.Client.P50), ms(row.Client.Max)))
		default:
			add(label+": p50 / p99 / max / admissions/s", fmt.Sprintf("%s / %s / %s ms / %.0f", ms(row.Client.P50), ms(row.Client.P99), ms(row.Client.Max), row.Client.Throughput()))
		}
		if row.Client.Errors > 0 {
			add(label+": errors", fmt.Sprint(row.Client.Errors))
		}
	}
	for _, f := range r.coldFloors() {
		add(f.Case+", c=1: floor (registry requests × RTT + check + revocation) / p50 as a multiple of it", fmt.Sprintf("%s ms / %.1f×", ms(f.Floor()), f.Multiple()))
	}
	if c := r.CLI; c != nil {
		add("signet verify, 1 image, fresh process: p50 / registry requests", fmt.Sprintf("%s ms / %.0f", ms(c.One.P50), c.OneRequests))
		add(fmt.Sprintf("signet verify, %d images, one process: p50 / registry requests", cliImages), fmt.Sprintf("%s ms / %.0f", ms(c.Many.P50), c.ManyRequests))
	}
	add("burst: signature fetches at the registry; verifications miss / shared / hit", fmt.Sprintf("%d; %.0f / %.0f / %.0f", r.Burst.SignatureFetches, r.Burst.Miss, r.Burst.Shared, r.Burst.Hit))
	if r.Mixed != nil {
		add(fmt.Sprintf("rollout of %d replicas: all Pods exist after (with / without the webhook)", r.Mixed.Replicas), fmt.Sprintf("%s / %s", r.Mixed.With.Round(time.Millisecond), r.Mixed.Without.Round(time.Millisecond)))
	}
	add(fmt.Sprintf("peak RSS with %d cached verdicts", r.Cfg.Fill), mib(r.Fill.Filled.HWM))
	for _, w := range r.Wide {
		add(fmt.Sprintf("a Pod of %d images, %s: p50 / max, registry requests, peak RSS", wideImages, w.Setup),
			fmt.Sprintf("%s / %s ms, %d, %s", ms(w.Client.P50), ms(w.Client.Max), w.Registry, mib(w.Memory.HWM)))
	}
	if a := r.Audit; a != nil {
		add(fmt.Sprintf("continuous validation, %d Pods sharing %d digests: cycle, verifications, registry requests, peak RSS", a.Pods, a.Digests),
			fmt.Sprintf("%s, %d, %d, %s", a.Cycle.Round(time.Millisecond), a.Verifications, a.RegistryRequests, mib(a.PeakRSS)))
	}
	return out
}

// comparison pairs this run's measures with the -before run's.
func (r *report) Comparison() [][3]string {
	if r.Before == nil {
		return nil
	}
	before := map[string]string{}
	for _, m := range r.Before.keyMeasures() {
		before[m.Name] = m.Value
	}
	var out [][3]string
	for _, m := range r.keyMeasures() {
		b, ok := before[m.Name]
		if !ok {
			b = "–"
		}
		out = append(out, [3]string{m.Name, b, m.Value})
	}
	return out
}

// loadReport reads a report written with -json.
func loadReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := &report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Cfg == nil {
		return nil, fmt.Errorf("%s: not a report written with -json", path)
	}
	r.Before = nil
	return r, nil
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func pctString(f float64) string {
	if f < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

// Ratio is d as a multiple of the registry's round trip, for templates.
func (r *report) Ratio(d time.Duration) string { return fmt.Sprintf("%.1f×", r.ratioToRTT(d)) }

// ratioToRTT is d over the first registry's median manifest GET.
func (r *report) ratioToRTT(d time.Duration) float64 {
	if len(r.RTT) == 0 || r.RTT[0].Summary.P50 == 0 {
		return 0
	}
	return float64(d) / float64(r.RTT[0].Summary.P50)
}

// writeTables prints the results as Markdown.
func (r *report) writeTables(w io.Writer) error {
	return tablesTmpl.Execute(w, r)
}

// writeDoc renders the whole of docs/performance.md from the run.
func (r *report) writeDoc(path string) error {
	var tables bytes.Buffer
	if err := r.writeTables(&tables); err != nil {
		return err
	}
	var doc bytes.Buffer
	if err := docTmpl.Execute(&doc, struct {
		*report
		Tables string
	}{r, tables.String()}); err != nil {
		return err
	}
	return os.WriteFile(path, doc.Bytes(), 0o644)
}

var funcs = template.FuncMap{
	"ms": ms,
	"bound": func(d time.Duration) string {
		switch {
		case d == 0:
			return "–"
		case d == time.Duration(math.MaxInt64):
			return "> 10 s"
		}
		return "≤ " + ms(d)
	},
	"mib": mib,
	"pct": pctString,
	"clip": func(s string) string {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "|", "/"), "\n", " ")
		if r := []rune(s); len(r) > 160 {
			return string(r[:160]) + "…"
		}
		return s
	},
	"share": func(p float64) string {
		if p < 0 {
			return "not in the profile"
		}
		return fmt.Sprintf("%.0f%%", p)
	},
	"rate":  func(s Summary) string { return fmt.Sprintf("%.0f", s.Throughput()) },
	"round": func(d time.Duration) time.Duration { return d.Round(time.Millisecond) },
	"secs":  func(d time.Duration) time.Duration { return d.Round(time.Second) },
	"mibf":  func(f float64) string { return mib(int64(f)) },
	"sub":   func(a, b int64) int64 { return a - b },
	"perEntry": func(f fillResult) string {
		if f.Entries <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f KiB", float64(f.Filled.RSS-f.Start.RSS)/f.Entries/1024)
	},
	"sortedCalls": func(m map[string]float64) []string {
		var out []string
		for k, v := range m {
			out = append(out, fmt.Sprintf("`%s` %.0f", k, v))
		}
		sort.Strings(out)
		return out
	},
	"sortedMeans": func(m map[string]time.Duration) []string {
		var out []string
		for k, v := range m {
			out = append(out, fmt.Sprintf("`%s` %s ms", k, ms(v)))
		}
		sort.Strings(out)
		return out
	},
	"join": strings.Join,
	"verdict": func(quick bool, t target) string {
		switch {
		case quick:
			return "not judged (-quick)"
		case t.Pass:
			return "**pass**"
		default:
			return "**MISS**"
		}
	},
}

//go:embed tables.md.tmpl
var tablesText string

//go:embed performance.md.tmpl
var docText string

var (
	tablesTmpl = template.Must(template.New("tables").Funcs(funcs).Parse(tablesText))
	docTmpl    = template.Must(template.New("doc").Funcs(funcs).Parse(docText))
)
