package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// auditResult is the continuous validation case: one cycle of pkg/audit's
// Auditor, through `signet audit` (the same Auditor, engine and verifiers
// the webhook's controller runs each cycle, in a process of its own so its
// peak RSS is the cycle's), over Pods Pending in the stack's API server.
type auditResult struct {
	Pods, Digests, Unsigned int
	// Create is how long creating the Pods took (not part of the cycle).
	Create time.Duration
	// Cycle is listing and judging every Pod (the CLI's cost.seconds);
	// Process the whole command: start, policy, cycle, output.
	Cycle, Process time.Duration
	// Verifications the cycle made, and registry requests as the CLI
	// counted them and as the case's registry served them.
	Verifications, RegistryRequests uint64
	AtRegistry                      int
	// PeakRSS is the process's maximum resident set (getrusage).
	PeakRSS int64
	Counts  map[string]int
}

// audit pushes AuditDigests images (one in four left unsigned) to the case's
// counting registry, creates AuditPods Pods sharing them in a namespace no
// webhook judges, and runs one `signet audit` cycle over that namespace.
func (b *bench) audit(ctx context.Context) (*auditResult, error) {
	res := &auditResult{Pods: b.cfg.AuditPods, Digests: b.cfg.AuditDigests}
	b.logf("audit: pushing %d images (3 in 4 signed) and creating %d Pods that share them", res.Digests, res.Pods)
	digests, err := pushImages(ctx, mustRepo(b.burstRegistryHost+"/"+b.id+"/cosign/audit"), res.Digests)
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, res.Digests, 8, func(i int) error {
		if i%4 == 3 {
			return nil
		}
		return retry(func() error { return b.cosign.sign(ctx, digests[i]) })
	})
	if err != nil {
		return nil, err
	}
	res.Unsigned = res.Digests / 4
	ns := b.id + "-audit"
	if err := b.createNamespace(ctx, ns, nil); err != nil {
		return nil, err
	}
	begin := time.Now()
	// In parallel batches: the quick mode stays short, and 5,000 Pods take
	// seconds, not minutes. They select a node that does not exist, so they
	// stay Pending even on a stack with a node (kubelet would otherwise try
	// to run a hundred of them), and the audit judges the digest their spec
	// names.
	err = parallel(ctx, res.Pods, 32, func(i int) error {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%05d", i), Namespace: ns, Labels: map[string]string{"app": fmt.Sprintf("a-%d", i%res.Digests)}},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"signet.dev/bench": "no-such-node"},
				Containers:   []corev1.Container{{Name: "app", Image: digests[i%res.Digests].String()}},
			},
		}
		return retry(func() error {
			_, err := b.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("creating the audit case's Pods: %w", err)
	}
	res.Create = time.Since(begin)

	cli := filepath.Join(b.dir, "signet")
	build := exec.CommandContext(ctx, "go", "build", "-o", cli, "./cmd/signet")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building ./cmd/signet: %w\n%s", err, out)
	}
	policy := filepath.Join(b.dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, fmt.Appendf(nil, `apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: %s-cosign}
spec:
  images: [{glob: "%s/%s/cosign/**"}]
  authorities: [{name: ci-kms, key: {kms: "awskms:///%s"}}]
`, b.id, b.burstRegistryHost, b.id, b.alias), 0o644); err != nil {
		return nil, err
	}

	b.burstRegistry.Reset()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, cli, "audit", "--kubeconfig", b.kubeconfig, "--namespace", ns, "--policy", policy, "--output", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin = time.Now()
	err = cmd.Run()
	res.Process = time.Since(begin)
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) { // 1: the unsigned images are violations
		return nil, fmt.Errorf("signet audit: %w\n%s", err, stderr.Bytes())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSS = ru.Maxrss << 10 // KiB on Linux
	}
	for _, n := range b.burstRegistry.Requests() {
		res.AtRegistry += n
	}
	var out struct {
		Pods   int
		Counts map[string]int
		Cost   struct {
			Seconds                         float64
			Verifications, RegistryRequests uint64
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("signet audit's JSON: %w", err)
	}
	if out.Pods != res.Pods {
		return nil, fmt.Errorf("signet audit judged %d Pods, want %d", out.Pods, res.Pods)
	}
	res.Cycle = time.Duration(out.Cost.Seconds * float64(time.Second))
	res.Verifications, res.RegistryRequests, res.Counts = out.Cost.Verifications, out.Cost.RegistryRequests, out.Counts
	b.logf("  audit: %d Pods created in %s; cycle %s (command %s), %d verifications for %d digests, %d registry requests (%d at the registry), peak RSS %s; %v",
		res.Pods, res.Create.Round(time.Millisecond), res.Cycle.Round(time.Millisecond), res.Process.Round(time.Millisecond),
		res.Verifications, res.Digests, res.RegistryRequests, res.AtRegistry, mib(res.PeakRSS), res.Counts)
	return res, nil
}
