package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestUpIsIdempotentAndDownStopsEverything runs a second, private stack
// beside the one `make test` started (its own state folder, its own ports).
func TestUpIsIdempotentAndDownStopsEverything(t *testing.T) {
	skipShort(t)
	root := repoRoot(t)
	s := newStack(root, t.TempDir(), filepath.Join(root, "bin"))
	ctx := context.Background()
	if err := s.up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(func() { _ = s.down() })
	procs, err := s.pids.read()
	if err != nil || len(procs) != 6 {
		t.Fatalf("pids = %v, %v; want 6 processes", procs, err)
	}
	env, err := os.ReadFile(s.envPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"KUBECONFIG=", "SIGNET_REGISTRY=127.0.0.1:", "SIGNET_REFERRERS_REGISTRY=127.0.0.1:", "AWS_ENDPOINT_URL_KMS=http://127.0.0.1:", "AWS_REGION=us-east-1"} {
		if !strings.Contains(string(env), "export "+v) {
			t.Errorf(".stack/env lacks %s", v)
		}
	}

	// A second up finds everything running and changes nothing.
	begin := time.Now()
	if err := s.up(ctx); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if again, _ := s.pids.read(); len(again) != 6 || again[0].pid != procs[0].pid {
		t.Fatalf("second up restarted processes: %v", again)
	}
	t.Logf("second up took %s", time.Since(begin))

	// A half-dead stack is cleared and started again.
	procs[3].stop(5 * time.Second)
	if err := s.up(ctx); err != nil {
		t.Fatalf("up over a half-dead stack: %v", err)
	}
	for _, p := range procs {
		if p.alive() {
			t.Errorf("%s (pid %d) from the half-dead stack still runs", p.name, p.pid)
		}
	}
	restarted, _ := s.pids.read()
	if err := s.down(); err != nil {
		t.Fatal(err)
	}
	for _, p := range restarted {
		if p.alive() {
			t.Errorf("%s (pid %d) survived down", p.name, p.pid)
		}
	}
	if _, err := os.Stat(s.envPath()); !os.IsNotExist(err) {
		t.Errorf(".stack/env survived down: %v", err)
	}
}

// TestFailedStartSaysWhyAndCleansUp uses a bin folder whose kube-apiserver
// exits at once: up must fail fast with its log and leave nothing running.
func TestFailedStartSaysWhyAndCleansUp(t *testing.T) {
	skipShort(t)
	root := repoRoot(t)
	bin := t.TempDir()
	for _, tool := range []string{"etcd", "kube-controller-manager", "registry"} {
		if err := os.Symlink(filepath.Join(root, "bin", tool), filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	// A real executable (not a script: the stack recognises its processes
	// by /proc/PID/exe, which for a script is the shell).
	src := filepath.Join(t.TempDir(), "main.go")
	broken := "package main\n\nimport \"os\"\n\nfunc main() {\n\tos.Stderr.WriteString(\"error: simulated broken kube-apiserver build\\n\")\n\tos.Exit(1)\n}\n"
	if err := os.WriteFile(src, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "kube-apiserver"), src).CombinedOutput(); err != nil {
		t.Fatalf("building the broken kube-apiserver: %v\n%s", err, out)
	}
	s := newStack(root, t.TempDir(), bin)
	begin := time.Now()
	err := s.up(context.Background())
	if err == nil {
		_ = s.down()
		t.Fatal("up succeeded with a broken kube-apiserver")
	}
	msg := err.Error()
	for _, want := range []string{"kube-apiserver did not become ready", "the process exited", "error: simulated broken kube-apiserver build", "stack-up stopped everything it had started"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if d := time.Since(begin); d > 30*time.Second {
		t.Errorf("failing took %s: a dead process must be noticed at once", d)
	}
	if procs, _ := s.pids.read(); len(procs) != 0 {
		t.Errorf("pids left after a failed up: %v", procs)
	}
}

// skipShort skips a test that starts stack processes under -short (make
// unit), which runs only what needs no stack tools.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the stack's tools: skipped by -short (make unit); make test runs it")
	}
}
