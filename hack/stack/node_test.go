package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/signet-dev/signet/test/podimage"
)

// TestMachineNode starts a private stack with the machine's node, runs a
// Pod and a Service on it, stops it, and checks that the machine is as it
// was: iptables, network interfaces, mounts, cgroups, sysctls, the
// machine-wide folders and processes. `make test` runs it on its own, after
// the shared stack (which has the node) is stopped.
func TestMachineNode(t *testing.T) {
	skipShort(t)
	if want, err := nodeWanted(); err != nil || !want {
		t.Skipf("%s=%s: this machine's node belongs to another stack (%v)", nodeEnv, os.Getenv(nodeEnv), err)
	}
	if c, err := readClaim(); err == nil && c.active() {
		t.Fatalf("the node on this machine belongs to the stack in %s: stop it first (make test runs this test after make stack-down)", c.Dir)
	}
	// A sysctl that appears with a kernel module iptables loads is no change.
	var sysctlNames []string
	for _, k := range nodeSysctls {
		if _, err := os.Stat(sysctlPath(k)); err == nil {
			sysctlNames = append(sysctlNames, k)
		}
	}
	before := snapshotForTest(t, sysctlNames)
	root := repoRoot(t)
	s := newStack(root, t.TempDir(), filepath.Join(root, "bin"))
	s.node = true
	ctx := context.Background()
	begin := time.Now()
	if err := s.up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("up with a node took %s", time.Since(begin).Round(100*time.Millisecond))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.down()
		}
	})
	procs, err := s.pids.read()
	if err != nil || len(procs) != 10 {
		t.Fatalf("pids = %v, %v; want 10 processes", procs, err)
	}
	begin = time.Now()
	if err := s.up(ctx); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if again, _ := s.pids.read(); len(again) != 10 || again[9].pid != procs[9].pid {
		t.Fatalf("second up restarted processes: %v", again)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("second up took %s: it must return at once", d)
	}

	env, err := os.ReadFile(s.envPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "export SIGNET_NODE="+nodeName+"\n") {
		t.Errorf(".stack/env lacks SIGNET_NODE:\n%s", env)
	}
	registry := envValue(t, string(env), "SIGNET_REGISTRY")
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	kc := kubernetes.NewForConfigOrDie(cfg)
	image, err := podimage.Push(ctx, registry+"/machine-test/app:v1", "machine-test")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default", Labels: map[string]string{"app": "machine-test"}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: image.String()}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	if _, err := kc.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "machine-test"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	created, err := kc.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := poll(t, 90*time.Second, func() (bool, string) {
		p, err := kc.CoreV1().Pods("default").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
			return false, fmt.Sprintf("phase %s, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		if got := p.Status.ContainerStatuses[0].ImageID; got != image.String() {
			return false, fmt.Sprintf("imageID %q, want %q", got, image.String())
		}
		return true, ""
	})
	if !running {
		t.Fatal("the Pod did not run the pushed image")
	}
	// kube-proxy programs the Service once its endpoint is ready.
	poll(t, 60*time.Second, func() (bool, string) {
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(out), "-d "+created.Spec.ClusterIP+"/32"), "no rule for the ClusterIP " + created.Spec.ClusterIP
	})
	// kubectl logs and exec go through the API server to kubelet.
	if _, err := kc.CoreV1().Pods("default").GetLogs("app", &corev1.PodLogOptions{}).DoRaw(ctx); err != nil {
		t.Errorf("logs through the API server: %v", err)
	}

	begin = time.Now()
	stopped = true
	if err := s.down(); err != nil {
		t.Fatalf("down: %v", err)
	}
	t.Logf("down took %s", time.Since(begin).Round(100*time.Millisecond))
	after := snapshotForTest(t, sysctlNames)
	for _, k := range sortedKeys(before) {
		if before[k] != after[k] {
			t.Errorf("%s changed:\n%s", k, lineDiff(before[k], after[k]))
		}
	}
	if _, err := os.Stat(claimPath); err == nil {
		t.Errorf("%s survived down", claimPath)
	}
	if _, err := kc.CoreV1().Pods("default").Get(ctx, "app", metav1.GetOptions{}); err == nil || apierrors.IsNotFound(err) {
		t.Error("the API server still answers after down")
	}
}

func envValue(t *testing.T, env, key string) string {
	t.Helper()
	for _, l := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(l, "export "+key+"="); ok {
			return v
		}
	}
	t.Fatalf(".stack/env lacks %s", key)
	return ""
}

// poll calls cond until it holds or timeout passes, then reports why not.
func poll(t *testing.T, timeout time.Duration, cond func() (bool, string)) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("gave up after %s: %s", timeout, why)
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// snapshotForTest is what a node could leave on the machine, each aspect
// as sorted lines; sysctlNames are the sysctls to compare.
func snapshotForTest(t *testing.T, sysctlNames []string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, fam := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(fam + "-save").Output()
		if err != nil {
			t.Fatalf("%s-save: %v", fam, err)
		}
		snap[fam] = normalIPTables(string(out))
	}
	links, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Name())
	}
	snap["network interfaces"] = strings.Join(names, "\n")
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mounts []string
	for _, l := range strings.Split(string(info), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			mounts = append(mounts, f[4])
		}
	}
	sort.Strings(mounts)
	snap["mounts"] = strings.Join(mounts, "\n")
	var cgroups []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			cgroups = append(cgroups, p)
		}
		return nil
	})
	snap["cgroups"] = strings.Join(cgroups, "\n")
	var sysctls []string
	for _, k := range sysctlNames {
		b, _ := os.ReadFile(sysctlPath(k))
		sysctls = append(sysctls, k+"="+strings.TrimSpace(string(b)))
	}
	snap["sysctls"] = strings.Join(sysctls, "\n")
	var paths []string
	for _, p := range nodePaths {
		if _, err := os.Lstat(p); err == nil {
			paths = append(paths, p)
		}
	}
	snap["machine-wide folders"] = strings.Join(paths, "\n")
	var shims []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil {
			if b := filepath.Base(exe); strings.HasPrefix(b, "containerd") || b == "kubelet" || b == "kube-proxy" || b == "runc" {
				shims = append(shims, b)
			}
		}
	}
	sort.Strings(shims)
	snap["node processes"] = strings.Join(shims, "\n")
	return snap
}

// normalIPTables drops counters and comments, and tables that hold only
// empty built-in chains with ACCEPT policies: iptables' nf_tables backend
// creates such a table on first use and never removes it, and it filters
// nothing.
func normalIPTables(save string) string {
	builtin := []string{"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}
	var out []string
	for name, t := range parseIPTables(save) {
		empty := len(t.rules) == 0
		for _, c := range t.chains {
			if !slices.Contains(builtin, c) || t.policies[c] != "ACCEPT" {
				empty = false
			}
		}
		if empty {
			continue
		}
		for _, c := range t.chains {
			out = append(out, name+" chain "+c+" "+t.policies[c])
		}
		for _, r := range t.rules {
			out = append(out, name+" "+r)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lineDiff lists the lines only before (-) and only after (+).
func lineDiff(before, after string) string {
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	var d []string
	for _, l := range b {
		if !slices.Contains(a, l) {
			d = append(d, "- "+l)
		}
	}
	for _, l := range a {
		if !slices.Contains(b, l) {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}
