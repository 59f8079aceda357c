package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/signet-dev/signet/test/podimage"
)

// The node: one kubelet on this machine, with containerd and runc from
// Debian, Pods on the stack's own bridge, kube-proxy and kube-scheduler.
const (
	nodeName   = "signet-node"
	bridgeName = "signet0"
	podSubnet  = "10.244.0.0/22"
	// nodeIP is the bridge's own address: kubelet refuses a loopback node
	// IP, and this one is of this machine, on the stack's own network.
	nodeIP = "10.244.0.1"
	// claimPath marks which stack owns the machine's node: iptables, the
	// bridge and containerd's machine-wide folders are one per machine.
	claimPath = "/run/signet-stack-node"
	// nodeEnv opts a stack out of the node (SIGNET_STACK_NODE=false).
	nodeEnv = "SIGNET_STACK_NODE"
	cniBin  = "/usr/lib/cni"
)

// nodeWanted reads SIGNET_STACK_NODE: unset or true starts a node.
func nodeWanted() (bool, error) {
	switch v := os.Getenv(nodeEnv); v {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, fmt.Errorf("%s=%q: use true or false", nodeEnv, v)
	}
}

func (s *stack) nodePath(p string) string { return filepath.Join(s.dir, "node", p) }
func (s *stack) containerdSock() string   { return s.nodePath("containerd/containerd.sock") }

// machinePath is where stack-up records the machine as it found it.
func machinePath(dir string) string { return filepath.Join(dir, "node", "machine.json") }

// nodeMounts are where the node's mounts live: the stack's folder,
// containerd's shim state and the CRI's network namespaces.
func nodeMounts(dir string) []string {
	return []string{filepath.Join(dir, "node"), "/run/containerd", "/run/netns/cni-", "/var/lib/kubelet"}
}

// nodeClaim is the content of claimPath.
type nodeClaim struct {
	Dir string `json:"dir"` // the owning stack's folder
	PID int    `json:"pid"` // the stack-up that claimed it
	Exe string `json:"exe"`
}

// active reports whether the claiming stack still runs: the stack-up that
// claimed it, or any process of that stack's.
func (c nodeClaim) active() bool {
	if (proc{pid: c.PID, exe: c.Exe}).alive() {
		return true
	}
	procs, _ := pidFile(filepath.Join(c.Dir, "pids")).read()
	for _, p := range procs {
		if p.alive() {
			return true
		}
	}
	return false
}

func readClaim() (nodeClaim, error) {
	var c nodeClaim
	b, err := os.ReadFile(claimPath)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// claimNode takes the machine's node for this stack. A claim whose stack
// no longer runs is stale: what that stack left on the machine is cleared
// with its own record, and the claim taken over.
func (s *stack) claimNode() error {
	exe, _ := os.Executable()
	b, err := json.Marshal(nodeClaim{Dir: s.dir, PID: os.Getpid(), Exe: exe})
	if err != nil {
		return err
	}
	for range 2 {
		f, err := os.OpenFile(claimPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.Write(b)
			return errors.Join(err, f.Close())
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("claiming the machine's node (%s): %w", claimPath, err)
		}
		c, err := readClaim()
		if err == nil && c.Dir != s.dir && c.active() {
			return fmt.Errorf("the node on this machine belongs to the stack in %s: only one stack per machine can run a node (iptables, the %s bridge and containerd's folders are machine-wide). Stop that stack, or start this one without a node: %s=false make stack-up", c.Dir, bridgeName, nodeEnv)
		}
		if err == nil && c.Dir != s.dir {
			if m, err := loadMachineState(machinePath(c.Dir)); err == nil {
				fmt.Printf("stack: clearing what the stopped stack in %s left of its node\n", c.Dir)
				if err := m.restore(nodeMounts(c.Dir)); err != nil {
					return fmt.Errorf("clearing the node left by the stack in %s: %w", c.Dir, err)
				}
			}
		}
		if err := os.Remove(claimPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return fmt.Errorf("could not claim %s", claimPath)
}

// startNode brings the node up once the control plane and the registries
// run: registry is where the pause image goes.
func (s *stack) startNode(ctx context.Context, apiURL, kubeconfig string, admin *http.Client, registries []string) error {
	if err := s.claimNode(); err != nil {
		return err
	}
	for _, d := range []string{"containerd", "cni/net.d", "cni/ipam", "cni/cache", "kubelet", "pod-logs", "volume-plugins"} {
		if err := os.MkdirAll(s.nodePath(d), 0o755); err != nil {
			return err
		}
	}
	m, err := snapshotMachine()
	if err != nil {
		return err
	}
	if err := m.save(machinePath(s.dir)); err != nil {
		return err
	}
	pause, err := podimage.Push(ctx, registries[0]+"/signet/pause:stack", "pause")
	if err != nil {
		return fmt.Errorf("building the node's pause image: %w", err)
	}
	if !m.Bridge {
		for _, args := range [][]string{
			{"link", "add", bridgeName, "type", "bridge"},
			{"addr", "add", nodeIP + "/22", "dev", bridgeName},
			{"link", "set", bridgeName, "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("creating the node's bridge: ip %s: %w: %s", strings.Join(args, " "), err, out)
			}
		}
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	schedPort, kubeletPort, kubeletHealth, proxyHealth, proxyMetrics := ports[0], ports[1], ports[2], ports[3], ports[4]

	if err := s.startContainerd(ctx, pause.String(), registries); err != nil {
		return err
	}
	insecure := insecureClient()
	if err := s.launch(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), insecure,
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", schedPort),
		"--leader-elect=false",
	); err != nil {
		return err
	}

	if err := s.startKubelet(ctx, apiURL, admin, kubeletPort, kubeletHealth); err != nil {
		return err
	}

	proxyConfig := s.nodePath("kube-proxy.yaml")
	if err := os.WriteFile(proxyConfig, []byte(fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
hostnameOverride: %s
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
nodePortAddresses: [primary]
iptables:
  # No route_localnet sysctl: NodePorts answer on the node IP only.
  localhostNodePorts: false
# Zero leaves the machine's conntrack settings as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, nodeName, podSubnet, proxyHealth, proxyMetrics)), 0o644); err != nil {
		return err
	}
	return s.launch(ctx, "kube-proxy", fmt.Sprintf("http://127.0.0.1:%d/healthz", proxyHealth), nil, "--config="+proxyConfig)
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: insecureTLS(), // the components' own self-signed serving certs
	}}
}

// startContainerd writes containerd's configuration (its own root, state
// and socket under the stack's folder; the stack's registries over plain
// HTTP; the CNI bridge) and waits for its CRI plugin.
func (s *stack) startContainerd(ctx context.Context, pause string, registries []string) error {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return fmt.Errorf("containerd is not installed (%w): run hack/tools.sh node-packages, or start the stack without a node: %s=false", err, nodeEnv)
	}
	certs := s.nodePath("containerd/certs.d")
	for _, r := range registries {
		if err := os.MkdirAll(filepath.Join(certs, r), 0o755); err != nil {
			return err
		}
		hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+r, "http://"+r)
		if err := os.WriteFile(filepath.Join(certs, r, "hosts.toml"), []byte(hosts), 0o644); err != nil {
			return err
		}
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "signet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, bridgeName, s.nodePath("cni/ipam"), podSubnet, nodeIP)
	if err := os.WriteFile(s.nodePath("cni/net.d/10-signet.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	sock := s.containerdSock()
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # Root here may not lower oom_score_adj; runc would fail every sandbox.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, s.nodePath("containerd/root"), s.nodePath("containerd/state"), sock, sock+".ttrpc",
		s.nodePath("containerd/opt"), pause, cniBin, s.nodePath("cni/net.d"), certs)
	cfgPath := s.nodePath("containerd/config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return err
	}
	// Only the stack's registries on 127.0.0.1 may be pulled from: any
	// other host goes to a proxy that is not there, so a Pod naming an
	// image elsewhere fails at once and nothing leaves the machine (not
	// even a DNS lookup). Go never proxies loopback.
	noProxy := []string{"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost",
		"http_proxy=http://127.0.0.1:9", "https_proxy=http://127.0.0.1:9", "no_proxy=127.0.0.1,localhost"}
	p, err := startWithEnv(s.pids, s.logs, "containerd", bin, noProxy, "--config="+cfgPath)
	if err != nil {
		return err
	}
	if err := waitCRI(ctx, sock, 60*time.Second, p.alive); err != nil {
		log := filepath.Join(s.logs, "containerd.log")
		return fmt.Errorf("containerd did not become ready on %s: %w\nlast lines of %s:\n%s", sock, err, log, tail(log))
	}
	return nil
}

// startKubelet starts kubelet with the node's identity and waits for the
// node to register Ready.
func (s *stack) startKubelet(ctx context.Context, apiURL string, admin *http.Client, port, healthPort int) error {
	p := s.pki.path
	kubeconfig := s.nodePath("kubelet.kubeconfig")
	if err := writeKubeconfig(kubeconfig, apiURL, p("ca.crt"), p("kubelet.crt"), p("kubelet.key")); err != nil {
		return err
	}
	config := s.nodePath("kubelet.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 here, and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
podLogsDir: %s
volumePluginDir: %s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
clusterDomain: cluster.local
failSwapOn: false
serializeImagePulls: false
# A test machine's disk and memory: evict only when nearly out.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, s.containerdSock(), nodeIP, port, healthPort, s.nodePath("pod-logs"), s.nodePath("volume-plugins"), p("ca.crt"))), 0o644); err != nil {
		return err
	}
	proc, err := start(s.pids, s.logs, "kubelet", filepath.Join(s.bin, "kubelet"),
		"--config="+config, "--kubeconfig="+kubeconfig,
		"--root-dir="+s.nodePath("kubelet"),
		"--hostname-override="+nodeName, "--node-ip="+nodeIP,
		"--v=1",
	)
	if err != nil {
		return err
	}
	if err := waitNodeReady(ctx, apiURL, admin, 90*time.Second, proc.alive); err != nil {
		log := filepath.Join(s.logs, "kubelet.log")
		return fmt.Errorf("kubelet: node %s did not become Ready: %w\nlast lines of %s:\n%s", nodeName, err, log, tail(log))
	}
	return nil
}

// waitNodeReady polls the Node until its Ready condition is True.
func waitNodeReady(ctx context.Context, apiURL string, client *http.Client, timeout time.Duration, alive func() bool) error {
	deadline := time.Now().Add(timeout)
	last := errors.New("not registered")
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/api/v1/nodes/"+nodeName, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err != nil {
			last = err
		} else {
			var node corev1.Node
			err := json.NewDecoder(resp.Body).Decode(&node)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusNotFound:
				last = errors.New("not registered")
			case resp.StatusCode != http.StatusOK:
				last = fmt.Errorf("HTTP %d", resp.StatusCode)
			case err != nil:
				last = fmt.Errorf("decoding the Node: %w", err)
			default:
				last = errors.New("no Ready condition yet")
				for _, c := range node.Status.Conditions {
					if c.Type == corev1.NodeReady {
						if c.Status == corev1.ConditionTrue {
							return nil
						}
						last = fmt.Errorf("condition Ready is %s: %s", c.Status, c.Message)
					}
				}
			}
		}
		if !alive() {
			return fmt.Errorf("the process exited (%w)", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("gave up after %s: %w", timeout, last)
}

// stopNode stops the node's components and clears what they left on the
// machine, when this stack started a node. kubelet goes first (it would
// restart what is stopped next), then the Pods' sandboxes through the CRI
// (their networks and mounts with them), then containerd.
func (s *stack) stopNode(procs []proc) error {
	m, err := loadMachineState(machinePath(s.dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	byName := map[string]proc{}
	for _, p := range procs {
		byName[p.name] = p
	}
	var errs []error
	byName["kube-proxy"].stop(10 * time.Second)
	byName["kubelet"].stop(10 * time.Second)
	if c := byName["containerd"]; c.alive() {
		if _, err := removeSandboxes(context.Background(), s.containerdSock()); err != nil {
			errs = append(errs, fmt.Errorf("containerd: %w (log: %s)", err, filepath.Join(s.logs, "containerd.log")))
		}
		c.stop(10 * time.Second)
	}
	killShims(s.containerdSock())
	if bin, err := filepath.EvalSymlinks(filepath.Join(s.bin, "kube-proxy")); err == nil {
		// kube-proxy's own clean-up of every mode's rules.
		if out, err := exec.Command(bin, "--cleanup").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %w: %s", err, out))
		}
	}
	if err := m.restore(nodeMounts(s.dir)); err != nil {
		errs = append(errs, err)
	}
	if c, err := readClaim(); err == nil && c.Dir == s.dir {
		if err := os.Remove(claimPath); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(machinePath(s.dir)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("stopping the node: %w", errors.Join(errs...))
	}
	return nil
}

// killShims kills containerd's runc shims of this stack's containerd (they
// outlive containerd by design); their containers die with them.
func killShims(sock string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for _, a := range args {
			if a == sock {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
