package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// share is the part of a profile spent in (CPU) or retained by (heap)
// one function and what it calls.
type share struct {
	What     string
	Function string
	Percent  float64 // of the profile's total; negative when not found
}

// profileShares reads a profile saved with -pprof through `go tool pprof
// -top -cum` and returns the cumulative share of each function in
// groups, plus the profile's total ("6.62s", "21049.58kB").
func profileShares(ctx context.Context, file, sampleIndex string, groups []share) ([]share, string, error) {
	args := []string{"tool", "pprof", "-top", "-cum", "-nodecount=100000"}
	if sampleIndex != "" {
		args = append(args, "-sample_index="+sampleIndex)
	}
	out, err := exec.CommandContext(ctx, "go", append(args, file)...).Output()
	if err != nil {
		return nil, "", fmt.Errorf("go tool pprof %s: %w", file, err)
	}
	cum, total := parseTop(string(out))
	res := make([]share, len(groups))
	for i, g := range groups {
		g.Percent = -1
		if p, ok := cum[g.Function]; ok {
			g.Percent = p
		}
		res[i] = g
	}
	return res, total, nil
}

var totalRE = regexp.MustCompile(`of ([0-9.]+[a-zA-Z]+) total`)

// parseTop maps each function of `pprof -top -cum` output to its cum%.
func parseTop(out string) (map[string]float64, string) {
	cum := map[string]float64{}
	total := ""
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		line := s.Text()
		if m := totalRE.FindStringSubmatch(line); m != nil && total == "" {
			total = m[1]
		}
		// flat flat% sum% cum cum% name…
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		p, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err != nil {
			continue
		}
		name := strings.Join(f[5:], " ")
		name = strings.TrimSuffix(name, " (inline)")
		cum[name] = p
	}
	return cum, total
}

// Where the webhook's time and memory go, by the functions that stand
// for each activity in the profiles -pprof saves.
var (
	warmGroups = []share{
		{What: "decoding the AdmissionReview and the Pod in it (controller-runtime, apimachinery)", Function: "k8s.io/apimachinery/pkg/runtime/serializer/json.(*Serializer).Decode"},
		{What: "Signet's policy evaluation: reference parsing, glob matching, verdict cache hit", Function: "github.com/signet-dev/signet/pkg/policy.(*Engine).Evaluate.func1"},
		{What: "Signet's judge: namespace labels, the decision, its log line", Function: "github.com/signet-dev/signet/pkg/admission.(*Judge).judge"},
		{What: "controller-runtime's per-request logger (WithValues)", Function: "github.com/go-logr/zapr.(*zapLogger).WithValues"},
		{What: "encoding the response", Function: "encoding/json.(*Encoder).Encode"},
		{What: "HTTP/2 and TLS framing", Function: "net/http.(*http2serverConn).serve"},
		{What: "growing the stacks of new request goroutines", Function: "runtime.newstack"},
		{What: "garbage collection", Function: "runtime.gcBgMarkWorker"},
	}
	coldGroups = []share{
		{What: "one cosign verification (registry reads, signature check)", Function: "github.com/signet-dev/signet/pkg/policy/verify/cosign.(*Verifier).Verify"},
		{What: "of which reading the .sig manifest and payload", Function: "github.com/signet-dev/signet/pkg/policy/verify/cosign.(*session).legacyCandidates"},
		{What: "of which the ECDSA P-256 signature check", Function: "crypto/ecdsa.VerifyASN1"},
		{What: "TLS handshakes the https half of go-containerregistry's ping race starts against the plain-HTTP registry", Function: "crypto/tls.(*Conn).clientHandshake"},
		{What: "decoding the AdmissionReview and the Pod in it", Function: "k8s.io/apimachinery/pkg/runtime/serializer/json.(*Serializer).Decode"},
		{What: "system calls (network)", Function: "syscall.Syscall"},
		{What: "garbage collection", Function: "runtime.gcBgMarkWorker"},
	}
	heapGroups = []share{
		{What: "retained by verifications: the cached verdicts (results, cache entries)", Function: "github.com/signet-dev/signet/pkg/policy.(*VerdictCache).Verify.func1"},
		{What: "of which the cache's entries and LRU list", Function: "github.com/signet-dev/signet/pkg/policy.(*VerdictCache).put"},
	}
)
