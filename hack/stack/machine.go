package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// A node changes the machine, not only the stack's folder: kubelet,
// kube-proxy and CNI program iptables, add a bridge, set sysctls, create
// cgroups and folders under /var and /run. machineState is what stack-up
// finds before it starts the node; stack-down puts back exactly that.

// sysctls the node's components change (kubelet's kernel tunables, IP
// forwarding for the CNI bridge, what kube-proxy may set).
var nodeSysctls = []string{
	"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
	"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.route_localnet",
	"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
	"net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait", "net.netfilter.nf_conntrack_tcp_be_liberal",
	"net.netfilter.nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout_stream",
}

// Machine-wide paths the node's components create whatever they are told:
// kubelet's container log links, CNI's cache, containerd's shim sockets and
// runc state, network namespaces, the flexvolume folder. Those that did
// not exist before are removed.
var nodePaths = []string{
	"/var/log/pods", "/var/log/containers", "/var/lib/cni", "/run/containerd", "/run/netns",
	"/var/lib/kubelet", "/usr/libexec/kubernetes", "/etc/cni", "/opt/cni", "/opt/containerd",
}

// iptablesTables are the tables kubelet, kube-proxy and CNI write.
var iptablesTables = []string{"filter", "nat", "mangle"}

type machineState struct {
	Sysctls  map[string]string   `json:"sysctls"`
	Missing  []string            `json:"missing"`  // nodePaths that did not exist
	IPTables map[string]string   `json:"iptables"` // iptables-save per family
	Cgroups  map[string][]string `json:"cgroups"`  // top-level folders per hierarchy
	Bridge   bool                `json:"bridge"`   // the bridge existed
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// snapshotMachine reads what the node will change.
func snapshotMachine() (machineState, error) {
	m := machineState{Sysctls: map[string]string{}, IPTables: map[string]string{}, Cgroups: map[string][]string{}}
	for _, k := range nodeSysctls {
		if b, err := os.ReadFile(sysctlPath(k)); err == nil {
			m.Sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range nodePaths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			m.Missing = append(m.Missing, p)
		}
	}
	for _, fam := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(fam + "-save").Output()
		if err != nil {
			return m, fmt.Errorf("%s-save: %w (the node needs iptables: hack/tools.sh node-packages)", fam, err)
		}
		m.IPTables[fam] = string(out)
	}
	var err error
	if m.Cgroups, err = cgroupChildren(); err != nil {
		return m, err
	}
	_, err = os.Stat("/sys/class/net/" + bridgeName)
	m.Bridge = err == nil
	return m, nil
}

// cgroupChildren lists the top-level folders of every cgroup hierarchy.
func cgroupChildren() (map[string][]string, error) {
	hier, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, h := range hier {
		dir := filepath.Join("/sys/fs/cgroup", h.Name())
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue // cpu and cpuacct are links to cpu,cpuacct
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				out[h.Name()] = append(out[h.Name()], e.Name())
			}
		}
	}
	return out, nil
}

func (m machineState) save(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func loadMachineState(path string) (machineState, error) {
	var m machineState
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// restore puts the machine back as snapshotMachine found it. Every
// component is stopped by then. It carries on past a failed step, so one
// stuck piece does not leave the rest behind, and reports them all.
func (m machineState) restore(mountPrefixes []string) error {
	var errs []error
	errs = append(errs, killCgroupProcs(m.Cgroups)...)
	errs = append(errs, unmountUnder(mountPrefixes)...)
	for _, fam := range []string{"iptables", "ip6tables"} {
		if err := restoreIPTables(fam, m.IPTables[fam]); err != nil {
			errs = append(errs, err)
		}
	}
	if !m.Bridge {
		if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
			if out, err := exec.Command("ip", "link", "delete", bridgeName).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("deleting the bridge %s: %w: %s", bridgeName, err, out))
			}
		}
	}
	keys := make([]string, 0, len(m.Sysctls))
	for k := range m.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		now, err := os.ReadFile(sysctlPath(k))
		if err == nil && strings.TrimSpace(string(now)) == m.Sysctls[k] {
			continue
		}
		if err := os.WriteFile(sysctlPath(k), []byte(m.Sysctls[k]+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s=%s: %w", k, m.Sysctls[k], err))
		}
	}
	for _, p := range m.Missing {
		if p == "/run/netns" {
			// Only if empty: other network namespaces may live there now.
			_ = os.Remove(p)
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, removeNewCgroups(m.Cgroups)...)
	return errors.Join(errs...)
}

// newCgroups lists, deepest first, every cgroup folder below a top-level
// folder that did not exist before.
func newCgroups(before map[string][]string) []string {
	now, err := cgroupChildren()
	if err != nil {
		return nil
	}
	var dirs []string
	for h, children := range now {
		for _, c := range children {
			if slices.Contains(before[h], c) {
				continue
			}
			_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup", h, c), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// killCgroupProcs SIGKILLs what still runs in the node's cgroups: the
// containers of a containerd that died before its Pods were stopped.
func killCgroupProcs(before map[string][]string) []error {
	var errs []error
	for _, dir := range newCgroups(before) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					errs = append(errs, fmt.Errorf("killing pid %d left in %s: %w", pid, dir, err))
				}
			}
		}
	}
	return errs
}

func removeNewCgroups(before map[string][]string) []error {
	var errs []error
	for _, dir := range newCgroups(before) {
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
		}
	}
	return errs
}

// unmountUnder detaches every mount below the prefixes, deepest first
// (kubelet's bind mount of its root folder, Pods' volumes, containerd's
// rootfs and shm mounts, network namespaces).
func unmountUnder(prefixes []string) []error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []error{err}
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMount(f[4])
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				points = append(points, p)
				break
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errs
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// iptablesRules is one family's ruleset as iptables-save prints it: per
// table, the chains and the rules (without counters).
type iptablesRules map[string]*iptablesTable

type iptablesTable struct {
	chains   []string
	policies map[string]string // built-in chain -> policy
	rules    []string          // "-A CHAIN …" lines as printed
}

func parseIPTables(save string) iptablesRules {
	r := iptablesRules{}
	var t *iptablesTable
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			t = &iptablesTable{policies: map[string]string{}}
			r[line[1:]] = t
		case t == nil:
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			t.chains = append(t.chains, f[0])
			if len(f) > 1 && f[1] != "-" {
				t.policies[f[0]] = f[1]
			}
		case strings.HasPrefix(line, "-A "):
			t.rules = append(t.rules, line)
		}
	}
	return r
}

// restoreIPTables removes what was added since before: rules added to
// chains that existed, then the chains that did not exist. It changes
// nothing else, so rules others add meanwhile stay.
func restoreIPTables(family, before string) error {
	out, err := exec.Command(family + "-save").Output()
	if err != nil {
		return fmt.Errorf("%s-save: %w", family, err)
	}
	was, now := parseIPTables(before), parseIPTables(string(out))
	var script bytes.Buffer
	for _, name := range iptablesTables {
		t := now[name]
		if t == nil {
			continue
		}
		old := was[name]
		if old == nil {
			old = &iptablesTable{}
		}
		var lines []string
		for _, rule := range t.rules {
			chain := strings.Fields(rule)[1]
			if slices.Contains(old.chains, chain) && !slices.Contains(old.rules, rule) {
				lines = append(lines, "-D"+strings.TrimPrefix(rule, "-A"))
			}
		}
		var added []string
		for _, c := range t.chains {
			if !slices.Contains(old.chains, c) {
				added = append(added, c)
			}
		}
		for _, c := range added {
			lines = append(lines, "-F "+c)
		}
		for _, c := range added {
			lines = append(lines, "-X "+c)
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(&script, "*%s\n%s\nCOMMIT\n", name, strings.Join(lines, "\n"))
	}
	if script.Len() == 0 {
		return nil
	}
	cmd := exec.Command(family+"-restore", "--noflush")
	cmd.Stdin = &script
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s-restore of the node's leftovers: %w: %s\n%s", family, err, b, script.String())
	}
	return nil
}
