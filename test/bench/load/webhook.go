package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/fixtures"
)

// webhook is a cmd/webhook process started with fixtures.StartWebhook,
// plus what the harness reads from outside it: its memory, its metrics
// and, with -pprof, its profiles.
type webhook struct {
	*fixtures.Webhook
	pprofAddr string // host:port of net/http/pprof, or ""
	admit     *admitter
	stopOnce  sync.Once
}

// Stop stops the process; later calls do nothing.
func (w *webhook) Stop() { w.stopOnce.Do(w.Webhook.Stop) }

// startWebhook runs bin with flags (and pprof on a free port when
// withPprof).
func startWebhook(bin, kubeconfig, logPath string, withPprof bool, flags ...string) (*webhook, error) {
	w := &webhook{}
	if withPprof {
		ports, err := fixtures.FreePorts(1)
		if err != nil {
			return nil, err
		}
		w.pprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		flags = append(flags, "--pprof-bind-address="+w.pprofAddr)
	}
	fw, err := fixtures.StartWebhook(bin, kubeconfig, logPath, flags...)
	if err != nil {
		return nil, err
	}
	w.Webhook = fw
	if w.admit, err = newAdmitter(fw.CABundle, fw.URL(admission.MustKind("pods").ValidatePath())); err != nil {
		fw.Stop()
		return nil, err
	}
	return w, nil
}

// memory is the webhook's resident memory now and at its peak.
type memory struct{ RSS, HWM int64 }

func (w *webhook) memory() (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.PID()))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = kb << 10
		case "VmHWM":
			m.HWM = kb << 10
		}
	}
	if m.HWM == 0 {
		return m, fmt.Errorf("/proc/%d/status has no VmHWM", w.PID())
	}
	return m, nil
}

// metrics is one scrape of /metrics: every sample by its series as
// printed, e.g. `signet_verdict_cache_entries` or
// `signet_registry_requests_total{code="200",host="127.0.0.1:5000"}`.
type metrics map[string]float64

func scrape(ctx context.Context, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format's sample lines.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, s.Err()
}

// sum adds every series of metric name whose labels contain all of
// labels (each `key="value"`).
func (m metrics) sum(name string, labels ...string) float64 {
	total := 0.0
	for series, v := range m {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// delta is after minus before for the same selection.
func delta(before, after metrics, name string, labels ...string) float64 {
	return after.sum(name, labels...) - before.sum(name, labels...)
}

// profile saves a pprof profile (path like "profile?seconds=5" or "heap")
// to file, when the webhook serves pprof.
func (w *webhook) profile(ctx context.Context, path, file string) error {
	if w.pprofAddr == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.pprofAddr+"/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("pprof %s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
