package e2e

import (
	"context"
	"os"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMain stops the shared webhook and removes its configuration, so the
// stack is left as the suite found it.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil && !target.cluster {
		_ = shared.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), shared.configName+"-validating", metav1.DeleteOptions{})
		_ = shared.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), shared.configName+"-mutating", metav1.DeleteOptions{})
		shared.webhook.Stop()
	}
	os.Exit(code)
}
