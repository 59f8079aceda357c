package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

func pod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

// denial is what the API server returns when the validating webhook that
// judges resource denies a request with msg. The webhook's name is the one
// in the configuration actually installed (h.hooks).
func (h *harness) denial(t *testing.T, resource, msg string) string {
	t.Helper()
	name, ok := h.hooks[resource]
	if !ok {
		t.Fatalf("no installed validating webhook judges %s (installed: %v)", resource, h.hooks)
	}
	return fmt.Sprintf("admission webhook %q denied the request: %s", name, msg)
}

func TestAdmission(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	signed, signedDigest := h.push(t, "app:signed")
	h.sign(t, signed, signedDigest)
	unsigned, unsignedDigest := h.push(t, "app:unsigned")
	h.policy(t, h.kmsPolicy("e2e-prod", h.repo+"/app", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	pods := h.cs.CoreV1().Pods(ns)
	unsignedDenial := fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-prod": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, unsigned, unsignedDigest, h.alias)

	t.Run("signed pod is admitted", func(t *testing.T) {
		if _, err := pods.Create(ctx, pod("signed", signed), metav1.CreateOptions{}); err != nil {
			t.Fatalf("signed pod denied: %v", err)
		}
	})
	t.Run("unsigned pod is denied with one line naming image, policy, authority, cause, remedy", func(t *testing.T) {
		_, err := pods.Create(ctx, pod("unsigned", unsigned), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || err.Error() != h.denial(t, "pods", unsignedDenial) {
			t.Fatalf("got:  %v\nwant: %s", err, h.denial(t, "pods", unsignedDenial))
		}
	})
	t.Run("dry-run is judged the same and creates nothing", func(t *testing.T) {
		_, err := pods.Create(ctx, pod("dry", unsigned), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("dry-run of an unsigned pod: %v", err)
		}
		if _, err := pods.Create(ctx, pod("dry-signed", signed), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Get(ctx, "dry-signed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("dry-run created the pod: %v", err)
		}
	})
	t.Run("deployment with an unsigned image fails at once", func(t *testing.T) {
		d := deployment("unsigned", unsigned)
		_, err := h.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		want := h.denial(t, "deployments", strings.Replace(unsignedDenial, "(spec.containers[0].image)", "(spec.template.spec.containers[0].image)", 1))
		if err == nil || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
	t.Run("signed deployment makes pods through the controller manager", func(t *testing.T) {
		if _, err := h.cs.AppsV1().Deployments(ns).Create(ctx, deployment("signed", signed), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=signed"})
			return err == nil && len(l.Items) == 1
		})
	})
	t.Run("updating a pod's image to an unsigned one is denied", func(t *testing.T) {
		if _, err := pods.Create(ctx, pod("update-me", signed), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := updatePod(ctx, pods, "update-me", func(p *corev1.Pod) error {
			p.Spec.Containers[0].Image = unsigned
			_, err := pods.Update(ctx, p, metav1.UpdateOptions{})
			return err
		})
		if err == nil || err.Error() != h.denial(t, "pods", unsignedDenial) {
			t.Fatalf("got: %v", err)
		}
	})
	t.Run("kubectl debug: an unsigned ephemeral container is denied", func(t *testing.T) {
		if _, err := pods.Create(ctx, pod("debug-me", signed), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := updatePod(ctx, pods, "debug-me", func(p *corev1.Pod) error {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: unsigned}}}
			_, err := pods.UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{})
			return err
		})
		want := h.denial(t, "pods", strings.Replace(unsignedDenial, "spec.containers[0]", "spec.ephemeralContainers[0]", 1))
		if err == nil || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
	t.Run("exempt namespace is never judged", func(t *testing.T) {
		exempt := h.namespace(t, h.exempt, nil)
		if _, err := h.cs.CoreV1().Pods(exempt).Create(ctx, pod("unsigned", unsigned), metav1.CreateOptions{}); err != nil {
			t.Fatalf("pod in an exempt namespace: %v", err)
		}
	})
}

func TestWarnModeAdmitsWithAWarning(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	img, digest := h.push(t, "warn:v1")
	h.policy(t, h.kmsPolicy("e2e-warn", h.repo+"/warn", h.alias, v1alpha1.ModeWarn), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	var warnings []string
	cfg := rest.CopyConfig(h.env.RESTConfig(t))
	cfg.WarningHandler = warningCollector(func(msg string) { warnings = append(warnings, msg) })
	cs := mustClientset(t, cfg)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("warned", img), metav1.CreateOptions{}); err != nil {
		t.Fatalf("Warn mode denied: %v", err)
	}
	want := fmt.Sprintf(`image %s@%s (spec.containers[0].image) would be denied by ClusterImagePolicy "e2e-warn" (Warn mode): no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, img, digest, h.alias)
	if len(warnings) != 1 || warnings[0] != want {
		t.Fatalf("warnings %q\nwant %q", warnings, want)
	}
}

func TestPolicyNotReadyFailsClosed(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	img, digest := h.push(t, "broken:v1")
	p := h.kmsPolicy("e2e-broken", h.repo+"/broken", "alias/does-not-exist", v1alpha1.ModeEnforce)
	h.policy(t, p, metav1.ConditionFalse)
	got := h.waitPolicy(t, p.Name, metav1.ConditionFalse)
	if got.Status.Conditions[0].Reason != "AuthorityUnavailable" {
		t.Fatalf("condition %+v", got.Status.Conditions[0])
	}
	ns := h.namespace(t, "", nil)
	_, err := h.cs.CoreV1().Pods(ns).Create(ctx, pod("x", img), metav1.CreateOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-broken": the policy is not ready: authority "ci-kms": `, img, digest))) ||
		!strings.Contains(err.Error(), "NotFoundException") {
		t.Fatalf("got: %v", err)
	}
}

func deployment(name, image string) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod(name, image).Spec},
		},
	}
}

// updatePod reads the Pod and calls update with it, again while the
// answer is a conflict: on the node, kubelet updates the Pod's status
// meanwhile, and the API server checks the resourceVersion before
// admission.
func updatePod(ctx context.Context, pods typedcorev1.PodInterface, name string, update func(*corev1.Pod) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return update(p)
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
