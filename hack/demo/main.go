// Command demo shows Signet on the local stack, narrating each real command
// it runs: the stack comes up, the ClusterImagePolicy CRD installs, a sample
// policy applies, an invalid one is refused with the CRD's own message; then
// the webhook runs locally, images are signed with the real cosign CLIs
// through the KMS test server and one with a test AWS Signer chain through
// notation, and kubectl shows the signed Pods admitted and Running on the
// stack's node, an unsigned Pod and Deployment refused, a Warn-mode warning,
// and a policy requiring a scan attestation admitting a clean image and
// refusing one with a CRITICAL finding. Everything stops again.
// `make demo` runs it.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, root: root, kubectl: filepath.Join(root, "bin", "kubectl")}

	// Stop the stack at the end only if the demo started it.
	wasRunning := stackEnvExists(root)
	d.say("Bring up the local stack: etcd, kube-apiserver, kube-controller-manager, two registries, AWS KMS test server, a node (kube-scheduler, containerd, kubelet, kube-proxy)")
	if err := d.show("go", "run", "./hack/stack", "up"); err != nil {
		return err
	}
	if !wasRunning {
		defer func() {
			d.say("Stop everything the demo started")
			_ = d.show("go", "run", "./hack/stack", "down")
		}()
	}
	if err := d.loadEnv(); err != nil {
		return err
	}

	d.say("Install the ClusterImagePolicy CRD")
	if err := d.show(d.kubectl, "apply", "--server-side", "-f", "config/crd/bases"); err != nil {
		return err
	}
	if err := d.show(d.kubectl, "wait", "--for=condition=Established", "--timeout=60s", "crd/clusterimagepolicies.signet.dev"); err != nil {
		return err
	}

	d.say("Apply a policy: production images from ECR must carry a cosign signature made with the CI's KMS key")
	if err := d.show(d.kubectl, "apply", "-f", "config/samples/cosign-kms.yaml"); err != nil {
		return err
	}
	if err := d.show(d.kubectl, "get", "cip"); err != nil {
		return err
	}

	d.say("A policy with a malformed key URI is refused by the API server, with the CRD's own message")
	bad := `apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: broken
spec:
  images:
  - glob: "registry.example.com/**"
  authorities:
  - name: ci
    key:
      kms: "alias/cosign"
`
	if err := d.showInput(bad, d.kubectl, "apply", "-f", "-"); err == nil {
		return fmt.Errorf("the API server accepted an invalid policy")
	}
	if err := d.admissionDemo(); err != nil {
		return err
	}
	fmt.Println("\nDemo finished.")
	return nil
}

type demo struct {
	ctx     context.Context
	root    string
	kubectl string
	env     []string
}

func (d *demo) say(s string) { fmt.Printf("\n\033[1m== %s\033[0m\n", s) }

// show runs a command with its output on the terminal, echoing it first.
func (d *demo) show(name string, args ...string) error { return d.showInput("", name, args...) }

func (d *demo) showInput(stdin, name string, args ...string) error {
	fmt.Printf("$ %s %s\n", filepath.Base(name), strings.Join(args, " "))
	cmd := exec.CommandContext(d.ctx, name, args...)
	cmd.Dir = d.root
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd.Run()
}

// loadEnv reads .stack/env so every command talks to the local stack.
func (d *demo) loadEnv() error {
	f, err := os.Open(filepath.Join(d.root, ".stack", "env"))
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(s.Text()), "export ")
		if line != "" && !strings.HasPrefix(line, "#") {
			d.env = append(d.env, line)
		}
	}
	return s.Err()
}

func stackEnvExists(root string) bool {
	_, err := os.Stat(filepath.Join(root, ".stack", "env"))
	return err == nil
}
