// Command stack runs Signet's local test stack on 127.0.0.1: etcd, a real
// kube-apiserver and kube-controller-manager, a CNCF distribution registry
// (no referrers API), a go-containerregistry registry (with the referrers
// API), the AWS KMS test server and, unless SIGNET_STACK_NODE=false, a node:
// kube-scheduler, containerd and runc, CNI on the stack's own bridge,
// kubelet and kube-proxy. One stack per machine can have the node.
//
//	go run ./hack/stack up     start it (idempotent), write .stack/env
//	go run ./hack/stack down   stop exactly what up started
//	go run ./hack/stack status say what runs
//
// `make stack-up` / `make stack-down` call it after building the tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "stack: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: stack up|down|status")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return errors.New("run from the repository root (make stack-up does)")
	}
	s := newStack(root, filepath.Join(root, ".stack"), filepath.Join(root, "bin"))
	if s.node, err = nodeWanted(); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	switch args[0] {
	case "up":
		return s.up(ctx)
	case "down":
		return s.down()
	case "status":
		return s.status()
	}
	return fmt.Errorf("unknown command %q: use up, down or status", args[0])
}

// stack knows where everything lives.
type stack struct {
	root, dir, bin, logs string
	pids                 pidFile
	pki                  pki
	// node: start a node (kube-scheduler, containerd, kubelet, kube-proxy).
	node bool
}

// newStack describes a stack for the repository at root, with its state in
// dir and the tools in bin.
func newStack(root, dir, bin string) *stack {
	return &stack{
		root: root,
		dir:  dir,
		bin:  bin,
		logs: filepath.Join(dir, "logs"),
		pids: pidFile(filepath.Join(dir, "pids")),
		pki:  pki{dir: filepath.Join(dir, "pki")},
	}
}

func (s *stack) envPath() string { return filepath.Join(s.dir, "env") }

// running reports whether a complete stack from an earlier up still runs.
func (s *stack) running() (bool, error) {
	procs, err := s.pids.read()
	if err != nil || len(procs) == 0 {
		return false, err
	}
	if _, err := os.Stat(s.envPath()); errors.Is(err, fs.ErrNotExist) {
		return false, nil // up never finished writing it
	} else if err != nil {
		return false, err
	}
	for _, p := range procs {
		if !p.alive() {
			return false, nil
		}
	}
	return true, nil
}

func (s *stack) up(ctx context.Context) error {
	ok, err := s.running()
	if err != nil {
		return err
	}
	if ok {
		fmt.Printf("stack: already running; environment in %s\n", s.envPath())
		return nil
	}
	// A half-started or crashed stack: clear it first so nothing leaks.
	if err := s.down(); err != nil {
		return err
	}
	begin := time.Now()
	if err := s.start(ctx); err != nil {
		// Leave nothing running behind a failed start; keep the logs.
		_ = s.down()
		return fmt.Errorf("%w\nstack-up stopped everything it had started; logs are in %s", err, s.logs)
	}
	fmt.Printf("stack: up in %s; environment in %s (source it, or tests read it)\n",
		time.Since(begin).Round(100*time.Millisecond), s.envPath())
	return nil
}

func (s *stack) down() error {
	procs, err := s.pids.read()
	if err != nil {
		return err
	}
	// The node first, and the machine put back as stack-up found it.
	nodeErr := s.stopNode(procs)
	// Reverse order: the control plane stops before etcd.
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(10 * time.Second)
	}
	if len(procs) > 0 {
		fmt.Printf("stack: stopped %d processes\n", len(procs))
	}
	// Everything but the logs goes: the next up starts from a clean state.
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if nodeErr != nil {
		// Keep the record of the machine for the next down.
		return fmt.Errorf("%w\nrun make stack-down again; the node's logs are in %s", nodeErr, s.logs)
	}
	for _, e := range entries {
		if e.Name() == "logs" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (s *stack) status() error {
	procs, err := s.pids.read()
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		fmt.Println("stack: not running")
		return nil
	}
	for _, p := range procs {
		state := "running"
		if !p.alive() {
			state = "NOT RUNNING (run make stack-down && make stack-up)"
		}
		fmt.Printf("%-24s pid %-7d %s\n", p.name, p.pid, state)
	}
	return nil
}
