package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/fixtures"
)

// instance starts one more webhook process with its own flags, judging Pods
// only in namespaces labelled label=true, for behaviours that are flags of
// the webhook (no-match policy, verify timeout). It stops with the test.
func (h *harness) instance(t *testing.T, label string, timeoutSeconds int32, flags ...string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/webhook").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	caPEM, err := fixtures.ServingCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := fixtures.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(h.env.Dir, "logs", "e2e-webhook-"+label+".log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--kubeconfig=" + h.env.Kubeconfig, "--cert-dir=" + dir,
		fmt.Sprintf("--webhook-port=%d", ports[0]),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[2]),
		fmt.Sprintf("--webhook-timeout=%ds", timeoutSeconds),
	}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	if err := fixtures.WaitOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2])); err != nil {
		t.Fatalf("webhook %s not ready: %v (log %s)", label, err, log.Name())
	}

	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	url := fmt.Sprintf("https://127.0.0.1:%d%s", ports[0], admission.PathPods)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("signet-e2e-%s-%d", label, os.Getpid())},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "pods.signet.dev",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			FailurePolicy: &fail, SideEffects: &none, TimeoutSeconds: &timeoutSeconds,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}},
		}},
	}
	ctx := context.Background()
	if _, err := h.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}

// plainNamespace makes a namespace judged only by an instance (not by the
// shared webhook), removed after the test.
func (h *harness) plainNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns, err := h.cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}
