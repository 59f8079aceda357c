package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Region and dummy credentials the AWS test servers and SDK clients share.
const (
	awsRegion = "us-east-1"
	awsKeyID  = "AKIASIGNETTESTSTACK0"
	awsSecret = "signet-test-stack-not-a-secret"
)

// start brings every component up in dependency order and writes .stack/env
// last, so its presence means the stack is complete.
func (s *stack) start(ctx context.Context) error {
	for _, d := range []string{s.dir, s.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := s.buildServers(ctx); err != nil {
		return err
	}
	if err := s.pki.generate(); err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort, kcmPort, distPort := ports[0], ports[1], ports[2], ports[3], ports[4]

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := s.launch(ctx, "etcd", etcdURL+"/health", nil,
		"--name=default", "--data-dir="+filepath.Join(s.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		// A throw-away test store: durability buys nothing, fsync costs seconds.
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return err
	}

	p := s.pki.path
	apiURL := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	admin, err := s.adminClient()
	if err != nil {
		return err
	}
	if err := s.launch(ctx, "kube-apiserver", apiURL+"/readyz", admin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		// Node: kubelet acts as system:node:<name>, as on a real cluster.
		"--authorization-mode=Node,RBAC",
		// kubectl logs/exec/port-forward: the API server dials kubelet by
		// the node IP (its host name would mean a DNS lookup off the
		// machine) and presents the admin certificate.
		"--kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
		"--kubelet-client-certificate="+p("admin.crt"), "--kubelet-client-key="+p("admin.key"),
		"--allow-privileged=true",
		// No nodes and a loopback address: nothing for the kubernetes
		// Service's endpoints to point at.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(s.dir, "apiserver-certs"),
	); err != nil {
		return err
	}
	kubeconfig := filepath.Join(s.dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, apiURL, p("ca.crt"), p("admin.crt"), p("admin.key")); err != nil {
		return err
	}

	if err := s.launch(ctx, "kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), insecureClient(),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", kcmPort),
		"--cert-dir="+filepath.Join(s.dir, "kcm-certs"),
		"--service-account-private-key-file="+p("sa.key"),
		"--root-ca-file="+p("ca.crt"),
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--leader-elect=false",
	); err != nil {
		return err
	}
	// Pods need their namespace's default ServiceAccount, which the
	// controller manager creates: waiting for it proves the control loop runs.
	if err := waitHTTP(ctx, apiURL+"/api/v1/namespaces/default/serviceaccounts/default", admin, 60*time.Second, nil); err != nil {
		return fmt.Errorf("kube-controller-manager did not create the default ServiceAccount: %w (log: %s)", err, filepath.Join(s.logs, "kube-controller-manager.log"))
	}

	distURL := fmt.Sprintf("127.0.0.1:%d", distPort)
	distConfig, err := s.writeDistributionConfig(distURL)
	if err != nil {
		return err
	}
	if err := s.launch(ctx, "registry", "http://"+distURL+"/v2/", nil, "serve", distConfig); err != nil {
		return err
	}
	referrers, err := s.launchSelfAddressed(ctx, "oci-registry", "/v2/")
	if err != nil {
		return err
	}
	kms, err := s.launchSelfAddressed(ctx, "kms-server", "")
	if err != nil {
		return err
	}

	if s.node {
		if err := s.startNode(ctx, apiURL, kubeconfig, admin, []string{distURL, strings.TrimPrefix(referrers, "http://")}); err != nil {
			return err
		}
	}

	env := [][2]string{
		{"KUBECONFIG", kubeconfig},
		{"SIGNET_REGISTRY", distURL},
		{"SIGNET_REFERRERS_REGISTRY", strings.TrimPrefix(referrers, "http://")},
		{"AWS_ENDPOINT_URL_KMS", kms},
		{"AWS_REGION", awsRegion},
		{"AWS_ACCESS_KEY_ID", awsKeyID},
		{"AWS_SECRET_ACCESS_KEY", awsSecret},
		// Never let the SDK reach for real credentials or instance metadata.
		{"AWS_EC2_METADATA_DISABLED", "true"},
		{"AWS_CONFIG_FILE", os.DevNull},
		{"AWS_SHARED_CREDENTIALS_FILE", os.DevNull},
	}
	if s.node {
		env = append(env, [2]string{"SIGNET_NODE", nodeName})
	}
	var b strings.Builder
	b.WriteString("# Written by `make stack-up`; removed by `make stack-down`.\n")
	for _, kv := range env {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], kv[1])
	}
	return os.WriteFile(s.envPath(), []byte(b.String()), 0o644)
}

// buildServers builds the project's own test servers; the Go build cache
// makes this quick after the first time.
func (s *stack) buildServers(ctx context.Context) error {
	for name, pkg := range map[string]string{
		"kms-server":   "./test/cmd/kms-server",
		"oci-registry": "./test/cmd/oci-registry",
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(s.bin, name), pkg)
		cmd.Dir = s.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w\n%s", pkg, err, out)
		}
	}
	return nil
}

// launch starts a component and waits until url answers 2xx.
func (s *stack) launch(ctx context.Context, name, url string, client *http.Client, args ...string) error {
	p, err := start(s.pids, s.logs, name, filepath.Join(s.bin, name), args...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, url, client, 90*time.Second, p.alive); err != nil {
		log := filepath.Join(s.logs, name+".log")
		return fmt.Errorf("%s did not become ready at %s: %w\nlast lines of %s:\n%s", name, url, err, log, tail(log))
	}
	return nil
}

// launchSelfAddressed starts one of the project's servers, which pick their
// own free port and write their URL to a file (no port race), and returns
// that URL once the server answers.
func (s *stack) launchSelfAddressed(ctx context.Context, name, probe string) (string, error) {
	addrFile := filepath.Join(s.dir, name+".addr")
	if _, err := start(s.pids, s.logs, name, filepath.Join(s.bin, name), "--listen=127.0.0.1:0", "--addr-file="+addrFile); err != nil {
		return "", err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			url := strings.TrimSpace(string(b))
			if probe == "" {
				return url, nil
			}
			return url, waitHTTP(ctx, url+probe, nil, 30*time.Second, nil)
		}
		if time.Now().After(deadline) {
			log := filepath.Join(s.logs, name+".log")
			return "", fmt.Errorf("%s did not write %s\nlast lines of %s:\n%s", name, addrFile, log, tail(log))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// insecureTLS trusts any server: for health probes of components that
// serve their own self-signed certificates.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // health probes on 127.0.0.1 only
}

// adminClient is an HTTPS client with the admin certificate, trusting the CA.
func (s *stack) adminClient() (*http.Client, error) {
	ca, err := os.ReadFile(s.pki.path("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(s.pki.path("admin.crt"), s.pki.path("admin.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}, nil
}

func (s *stack) writeDistributionConfig(addr string) (string, error) {
	path := filepath.Join(s.dir, "distribution.yaml")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(s.dir, "distribution"), addr)
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// freePorts asks the kernel for n free loopback ports. The listeners stay
// open until all are chosen, so the n ports are distinct.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port on 127.0.0.1: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 2xx or the timeout passes. alive,
// when set, lets it give up at once when the process has exited.
func waitHTTP(ctx context.Context, url string, client *http.Client, timeout time.Duration, alive func() bool) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		if alive != nil && !alive() {
			return fmt.Errorf("the process exited (%w)", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("gave up after %s: %w", timeout, last)
}

func writeKubeconfig(path, server, ca, cert, key string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: signet-stack
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: signet-admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: signet-stack
  context:
    cluster: signet-stack
    user: signet-admin
current-context: signet-stack
`, server, ca, cert, key)
	return os.WriteFile(path, []byte(cfg), 0o600)
}
