package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/test/stack"
)

// TestWebhookServesAgainstTheStack runs the real binary against the local
// control plane: it must become ready, serve TLS with the certificate in
// --cert-dir, expose metrics, and stop cleanly on SIGTERM.
func TestWebhookServesAgainstTheStack(t *testing.T) {
	env := stack.Load(t)
	env.InstallCRD(t) // the manager watches ClusterImagePolicies
	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certDir := t.TempDir()
	caPool := writeServingCert(t, certDir)
	ports := freePorts(t, 3)
	cmd := exec.Command(bin,
		"--kubeconfig="+env.Kubeconfig,
		"--cert-dir="+certDir,
		fmt.Sprintf("--webhook-port=%d", ports[0]),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[2]),
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	waitOK(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), http.DefaultClient)
	waitOK(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[2]), http.DefaultClient)
	waitOK(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1]), http.DefaultClient)

	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), &tls.Config{RootCAs: caPool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("webhook port does not serve the certificate from --cert-dir: %v", err)
	}
	conn.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
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
	err := run([]string{"--no-match-policy=maybe", "--webhook-port=0"})
	want := "--webhook-port 0: must be between 1 and 65535\n--no-match-policy \"maybe\": must be allow, warn or deny"
	if err == nil || err.Error() != want {
		t.Fatalf("run = %v, want %q", err, want)
	}
}

func writeServingCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signet-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func waitOK(t *testing.T, url string, c *http.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
