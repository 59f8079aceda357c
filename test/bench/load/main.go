// Command load is Signet's load harness: it runs the webhook binary
// against the local stack (`make stack-up`) and sends it real
// AdmissionReview requests over HTTPS, as the API server does, then
// prints a table of latencies, throughput, registry traffic and memory,
// with the performance targets of issue 8 marked pass or fail.
//
//	source .stack/env && go run ./test/bench/load [-quick] [-pprof DIR] [-write docs/performance.md]
//
// The cases: warm (one signed digest, verdict cached), cold (distinct
// signed digests never seen, for cosign with an AWS KMS key and for AWS
// Signer), burst (500 concurrent admissions of one new image), mixed (a
// Deployment rollout through the real API server and controller manager)
// memory with 10,000 cached verdicts, and continuous validation (one
// `signet audit` cycle over 5,000 Pending Pods sharing 200 digests). The registry's round-trip time
// is measured in the same run, so cold latency reads as a multiple of the
// physical floor. -write renders docs/performance.md from the run itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

// config is the harness's flags.
type config struct {
	Quick       bool
	WarmFor     time.Duration
	Concurrency int
	Cold        int
	Burst       int
	Replicas    int
	Fill        int
	RTT         int
	PprofDir    string
	Write       string
	JSON        string
	Before      string
	Note        string
	Webhook     string
	CLI         string
	CLIRuns     int
	WideOnly    bool
	// AuditPods Pods sharing AuditDigests digests: the continuous
	// validation case.
	AuditPods, AuditDigests int
	Args                    []string // as given, for the report's command line
}

func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{Args: args}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&c.Quick, "quick", false, "Small counts everywhere (a smoke run of every case in well under a minute); targets are not judged.")
	fs.DurationVar(&c.WarmFor, "warm-for", 5*time.Second, "How long the warm case sends requests.")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "Requests in flight in the warm, concurrent cold and cache-fill cases.")
	fs.IntVar(&c.Cold, "cold", 200, "Distinct signed digests per cold case.")
	fs.IntVar(&c.Burst, "burst", 500, "Concurrent admissions of one new image in the burst case.")
	fs.IntVar(&c.Replicas, "replicas", 20, "Replicas of the Deployment in the mixed case.")
	fs.IntVar(&c.Fill, "fill", 10000, "Verdicts cached before memory is read.")
	fs.IntVar(&c.RTT, "rtt", 200, "Manifest GETs that measure the registry's round-trip time.")
	fs.StringVar(&c.PprofDir, "pprof", "", "Folder to save the webhook's CPU profiles (warm, cache fill) and heap profile (after the cache fill) into; the report summarises them.")
	fs.StringVar(&c.Write, "write", "", "Write the report (method, table, command, commit, machine) to this Markdown file, e.g. docs/performance.md.")
	fs.StringVar(&c.JSON, "json", "", "Also write the results as JSON to this file (for -before).")
	fs.StringVar(&c.Before, "before", "", "A JSON file from an earlier run (-json): the report shows its numbers beside this run's.")
	fs.StringVar(&c.Webhook, "webhook", "", "A webhook binary to run instead of building ./cmd/webhook.")
	fs.StringVar(&c.CLI, "cli", "", "A signet CLI binary to run in the CLI case instead of building ./cmd/signet.")
	fs.IntVar(&c.CLIRuns, "cli-runs", 30, "Runs (fresh processes) of each CLI case.")
	fs.BoolVar(&c.WideOnly, "wide-only", false, "Run only the wide case (a Pod of 10,000 containers against the images-per-request limit, on and off).")
	fs.IntVar(&c.AuditPods, "audit-pods", 5000, "Pods the continuous validation case audits in one cycle.")
	fs.IntVar(&c.AuditDigests, "audit-digests", 200, "Distinct digests those Pods share (one in four unsigned).")
	fs.StringVar(&c.Note, "note", "", "What the measured webhook is, for the report (useful with -webhook).")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"warm-for": func() { c.WarmFor = time.Second },
			"cold":     func() { c.Cold = 20 },
			"burst":    func() { c.Burst = 100 },
			"replicas": func() { c.Replicas = 3 },
			"fill":     func() { c.Fill = 300 },
			"rtt":      func() { c.RTT = 50 },
			"cli-runs": func() { c.CLIRuns = 3 },
			// Few enough Pods to create in a few seconds, enough that Pods share digests.
			"audit-pods":    func() { c.AuditPods = 400 },
			"audit-digests": func() { c.AuditDigests = 40 },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	if c.Concurrency < 1 || c.Cold < 1 || c.Burst < 1 || c.Replicas < 1 || c.Fill < 1 || c.RTT < 1 || c.CLIRuns < 1 || c.WarmFor <= 0 || c.AuditPods < 1 || c.AuditDigests < 1 {
		return nil, fmt.Errorf("-concurrency, -cold, -burst, -replicas, -fill, -rtt, -cli-runs, -warm-for, -audit-pods and -audit-digests must be positive")
	}
	if c.AuditDigests > c.AuditPods {
		return nil, fmt.Errorf("-audit-digests %d: more than -audit-pods %d", c.AuditDigests, c.AuditPods)
	}
	return c, nil
}

// run runs every case and returns the report it printed.
func run(ctx context.Context, args []string, stdout io.Writer) (*report, error) {
	cfg, err := parseFlags(args, stdout)
	if err != nil {
		return nil, err
	}
	var before *report
	if cfg.Before != "" {
		if before, err = loadReport(cfg.Before); err != nil {
			return nil, err
		}
	}
	if cfg.PprofDir != "" {
		if err := os.MkdirAll(cfg.PprofDir, 0o755); err != nil {
			return nil, err
		}
	}
	b, err := setup(ctx, cfg, stdout)
	if err != nil {
		return nil, err
	}
	defer b.cleanup()
	rep, err := b.runCases(ctx)
	if err != nil {
		return nil, err
	}
	rep.Before = before
	if cfg.JSON != "" {
		if err := rep.writeJSON(cfg.JSON); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(stdout)
	if err := rep.writeTables(stdout); err != nil {
		return nil, err
	}
	if cfg.Write != "" {
		if err := rep.writeDoc(cfg.Write); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", cfg.Write)
	}
	return rep, nil
}
