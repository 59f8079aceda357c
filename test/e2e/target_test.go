package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// target is where the webhook under test runs. One suite, two targets:
//
//   - local (default, `make test`): the suite builds the webhook, runs it on
//     127.0.0.1 against the local stack and registers its own webhook
//     configurations for namespaces labelled signet-e2e=true;
//   - cluster (`make e2e-kind`, SIGNET_E2E_TARGET=cluster): the Helm chart
//     installed the webhook in a kind cluster, judging namespaces labelled
//     signet-e2e=true (hack/kind/values.yaml), and the suite uses it as a
//     user would.
var target = struct {
	cluster bool
	// namespace and release locate the installed webhook (cluster only).
	namespace, release string
	// exempt is a namespace the installation lists as exempt.
	exempt string
}{
	cluster:   os.Getenv("SIGNET_E2E_TARGET") == "cluster",
	namespace: envOr("SIGNET_E2E_NAMESPACE", "signet-system"),
	release:   envOr("SIGNET_E2E_RELEASE", "signet"),
	exempt:    envOr("SIGNET_E2E_EXEMPT", "e2e-exempt"),
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// localOnly skips a test that needs something only the local target has
// (a second webhook process with other flags, or a server in the test
// process that an in-cluster webhook cannot reach). The local target runs
// it in CI; the reason is printed so a kind run says what it left out.
func localOnly(t *testing.T, why string) {
	t.Helper()
	if target.cluster {
		t.Skipf("local target only: %s", why)
	}
}

// scrape returns the webhook's Prometheus metrics: from its port locally,
// through the API server's pod proxy in a cluster (the installation runs
// one replica, so the counters are that replica's).
func (h *harness) scrape(t *testing.T) []byte {
	t.Helper()
	if target.cluster {
		return h.scrapeCluster(t)
	}
	resp, err := http.Get(h.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// scrapeCluster finds the release's webhook Pod and its container port
// named metrics, and reads /metrics through the API server.
func (h *harness) scrapeCluster(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	pods, err := h.cs.CoreV1().Pods(target.namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + target.release})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Spec.Containers {
			for _, port := range c.Ports {
				if port.Name != "metrics" {
					continue
				}
				body, err := h.cs.CoreV1().Pods(target.namespace).ProxyGet("http", p.Name, strconv.Itoa(int(port.ContainerPort)), "/metrics", nil).DoRaw(ctx)
				if err != nil {
					t.Fatalf("scraping %s/%s through the API server: %v", target.namespace, p.Name, err)
				}
				return body
			}
		}
	}
	t.Fatalf("no running Pod of release %s in %s exposes a metrics port", target.release, target.namespace)
	return nil
}
