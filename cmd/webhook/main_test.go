package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/stack"
)

// TestWebhookServesAgainstTheStack runs the real binary against the local
// control plane: it must become ready, serve TLS with the certificate in
// --cert-dir, expose metrics, and stop cleanly on SIGTERM.
func TestWebhookServesAgainstTheStack(t *testing.T) {
	env := stack.Load(t)
	env.InstallCRD(t) // the manager watches ClusterImagePolicies
	bin := webhookBinary(t)
	certDir := t.TempDir()
	caPEM, err := fixtures.ServingCert(certDir)
	if err != nil {
		t.Fatal(err)
	}
	caPool := x509.NewCertPool()
	caPool.AppendCertsFromPEM(caPEM)
	ports, err := fixtures.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+env.Kubeconfig,
		"--cert-dir="+certDir, "--cert-management=external", "--shutdown-delay=3s", "--audit-interval=0",
		fmt.Sprintf("--webhook-port=%d", ports[0]),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[2]),
	)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = os.Stderr, io.MultiWriter(os.Stderr, logs)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	if err := fixtures.WaitOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2])); err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WaitOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[2])); err != nil {
		t.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1])
	if err := fixtures.WaitOK(metricsURL); err != nil {
		t.Fatal(err)
	}
	// Before any admission only the collectors that read counters have
	// samples (labelled vectors appear with their first observation).
	assertMetrics(t, metricsURL,
		"controller_runtime_webhook_requests_total",
		`signet_verdict_cache_lookups_total{result="hit"} 0`,
		"signet_verdict_cache_entries 0",
		"signet_revocation_lookups_total 0",
		"signet_revocation_best_effort_admitted_total 0",
	)

	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), &tls.Config{RootCAs: caPool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("webhook port does not serve the certificate from --cert-dir: %v", err)
	}
	conn.Close()

	// One review as the API server sends it: the decision is counted on
	// the metrics endpoint and logged with the request's UID.
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"main-test-0001",
		"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
		"namespace":"default","name":"probe","operation":"CREATE","userInfo":{"username":"main-test"},
		"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe","namespace":"default"},
		"spec":{"containers":[{"name":"app","image":"registry.invalid/signet-main-test@sha256:` + strings.Repeat("0", 64) + `"}]}}}}`
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}}
	resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", ports[0], admission.MustKind("pods").ValidatePath()), "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Response struct{ UID string } `json:"response"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if err != nil || answer.Response.UID != "main-test-0001" {
		t.Fatalf("review answer %+v, %v", answer, err)
	}
	assertMetrics(t, metricsURL,
		`controller_runtime_webhook_requests_total{code="200",webhook="/validate/pods"} 1`,
		"signet_admission_decisions_total{",
	)
	if !strings.Contains(logs.String(), `"msg":"starting","version":"(devel)"`) {
		t.Errorf("the start line does not report the build's version")
	}
	if !strings.Contains(logs.String(), `"requestID":"main-test-0001"`) {
		t.Errorf("no log line carries the request UID main-test-0001")
	}

	// SIGTERM starts the drain: not ready at once, still answering
	// admissions until --shutdown-delay has passed.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2])
	drained := false
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && !drained; time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get(readyz + "?verbose"); err == nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			drained = r.StatusCode != http.StatusOK && strings.Contains(string(body), "[-]shutdown failed")
		}
	}
	if !drained {
		t.Fatal("/readyz did not report the shutdown within 2s of SIGTERM")
	}
	resp, err = hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", ports[0], admission.MustKind("pods").ValidatePath()), "application/json",
		strings.NewReader(strings.Replace(review, "main-test-0001", "main-test-0002", 1)))
	if err != nil {
		t.Fatalf("admission refused while draining: %v", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if err != nil || answer.Response.UID != "main-test-0002" {
		t.Fatalf("review answer while draining %+v, %v", answer, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s of SIGTERM")
	}
}

func TestWebhookRejectsBadFlagsBeforeStarting(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "signet-system")
	err := run([]string{"--no-match-policy=maybe", "--webhook-port=0"})
	want := "--webhook-port 0: must be between 1 and 65535\n--no-match-policy \"maybe\": must be allow, warn or deny"
	if err == nil || err.Error() != want {
		t.Fatalf("run = %v, want %q", err, want)
	}
}

// assertMetrics: the endpoint serves a line starting with each of want.
func assertMetrics(t *testing.T, url string, want ...string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range want {
		if !strings.Contains(string(body), "\n"+line) {
			t.Errorf("%s does not serve %s", url, line)
		}
	}
}

// lockedBuffer collects the process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
