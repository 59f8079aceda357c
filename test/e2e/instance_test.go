package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/fixtures"
)

// instance starts one more webhook process with its own flags, judging Pods
// only in namespaces labelled label=true, for behaviours that are flags of
// the webhook (no-match policy, verify timeout). It stops with the test.
func (h *harness) instance(t *testing.T, label string, timeoutSeconds int32, flags ...string) *fixtures.Webhook {
	t.Helper()
	localOnly(t, "it starts a second webhook process with its own flags")
	bin, err := fixtures.WebhookBinary()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{fmt.Sprintf("--webhook-timeout=%ds", timeoutSeconds)}, flags...)
	w, err := fixtures.StartWebhook(bin, h.env.Kubeconfig, filepath.Join(h.env.Dir, "logs", "e2e-webhook-"+label+".log"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)

	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	url := w.URL(admission.MustKind("pods").ValidatePath())
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("signet-e2e-%s-%d", label, os.Getpid())},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         h.hooks["pods"], // the name the suite's denials expect
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.CABundle},
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
	return w
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

// whenCompiled runs create until Signet answers with something other than
// "not ready". An instance started before a policy compiles it shortly after
// the shared webhook has marked it Ready (each process compiles on its own),
// and until then it answers 503 asking the client to retry, as this does.
func whenCompiled(t *testing.T, create func() error) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := create()
		if err == nil || !strings.Contains(err.Error(), "Signet is not ready to judge images") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
