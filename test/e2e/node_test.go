package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/podimage"
)

// TestPodsRunOnTheNode proves the guarantee where it matters, on the
// stack's node: what kubelet runs is exactly the digest Signet verified,
// and what Signet refuses never runs.
func TestPodsRunOnTheNode(t *testing.T) {
	h := setup(t)
	if h.env.Node == "" {
		t.Skip("the stack runs without a node (SIGNET_STACK_NODE=false): nothing runs Pods")
	}
	ctx := context.Background()
	// Each run's images are its own (the variant is the reference): the
	// node's containerd keeps earlier runs' images, and kubelet names an
	// image it has under another repository by that repository.
	runnable := func(tag string) (ref, byDigest string) {
		ref = h.repo + "/run:" + tag
		d, err := podimage.Push(ctx, ref, ref)
		if err != nil {
			t.Fatal(err)
		}
		return ref, d.String()
	}
	v1, v1Digest := runnable("v1")
	v2, v2Digest := runnable("v2")
	unsigned, unsignedDigest := runnable("unsigned")
	for ref, d := range map[string]string{v1: v1Digest, v2: v2Digest} {
		h.sign(t, ref, d[strings.Index(d, "@")+1:])
	}
	h.policy(t, h.kmsPolicy("e2e-node", h.repo+"/run", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	pods := h.cs.CoreV1().Pods(ns)
	digestOf := func(byDigest string) string { return byDigest[strings.Index(byDigest, "@")+1:] }
	unsignedDenial := h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-node": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, unsigned, digestOf(unsignedDigest), h.alias))

	t.Run("a signed image by tag is pinned, runs, and kubelet reports the verified digest", func(t *testing.T) {
		p, err := pods.Create(ctx, runningPod("signed", v1), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := p.Spec.Containers[0].Image, v1+"@"+digestOf(v1Digest); got != want {
			t.Fatalf("image %q, want %q", got, want)
		}
		h.waitRunning(t, ns, "signed", func(p *corev1.Pod) []corev1.ContainerStatus { return p.Status.ContainerStatuses }, v1Digest)
	})
	t.Run("an unsigned Pod is denied and never created", func(t *testing.T) {
		_, err := pods.Create(ctx, runningPod("unsigned", unsigned), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || err.Error() != unsignedDenial {
			t.Fatalf("got:  %v\nwant: %s", err, unsignedDenial)
		}
		if _, err := pods.Get(ctx, "unsigned", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("the denied Pod exists: %v", err)
		}
	})
	t.Run("a Deployment rolls out from one signed image to the next", func(t *testing.T) {
		d := deployment("rollout", v1)
		d.Spec.Template.Spec.TerminationGracePeriodSeconds = new(int64)
		if _, err := h.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		h.waitRollout(t, ns, "rollout", v1Digest)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := h.cs.AppsV1().Deployments(ns).Get(ctx, "rollout", metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Spec.Template.Spec.Containers[0].Image = v2
			_, err = h.cs.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		h.waitRollout(t, ns, "rollout", v2Digest)
	})
	t.Run("kubectl debug: an unsigned ephemeral container is refused, a signed one is pinned and runs", func(t *testing.T) {
		out, err := h.kubectl(t, "debug", "-n", ns, "signed", "--image="+unsigned, "--container=debug-unsigned", "--profile=general")
		want := "Error from server (Forbidden): " + strings.Replace(unsignedDenial, "spec.containers[0]", "spec.ephemeralContainers[0]", 1)
		if err == nil || strings.TrimSpace(out) != want {
			t.Fatalf("kubectl debug with an unsigned image: %v\n%s\nwant: %s", err, out, want)
		}
		if out, err := h.kubectl(t, "debug", "-n", ns, "signed", "--image="+v2, "--container=debug", "--profile=general"); err != nil {
			t.Fatalf("kubectl debug with a signed image: %v\n%s", err, out)
		}
		p, err := pods.Get(ctx, "signed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(p.Spec.EphemeralContainers); n != 1 {
			t.Fatalf("%d ephemeral containers, want 1 (the refused one must not be there)", n)
		}
		if got, want := p.Spec.EphemeralContainers[0].Image, v2+"@"+digestOf(v2Digest); got != want {
			t.Fatalf("ephemeral container image %q, want %q", got, want)
		}
		h.waitRunning(t, ns, "signed", func(p *corev1.Pod) []corev1.ContainerStatus { return p.Status.EphemeralContainerStatuses }, v2Digest)
	})
}

// runningPod is a Pod that stops at once when deleted.
func runningPod(name, image string) *corev1.Pod {
	p := pod(name, image)
	p.Spec.TerminationGracePeriodSeconds = new(int64)
	return p
}

// kubectl runs the pinned ./bin/kubectl against the stack, as a user would.
func (h *harness) kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(h.root, "bin", "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.env.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// waitRunning waits until the Pod's statuses (chosen by which) are all
// running, each with exactly imageID.
func (h *harness) waitRunning(t *testing.T, ns, name string, which func(*corev1.Pod) []corev1.ContainerStatus, imageID string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		p, err := h.cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		statuses := which(p)
		ok := len(statuses) > 0
		for _, s := range statuses {
			if s.State.Running == nil || s.ImageID != imageID {
				ok = false
			}
		}
		if ok {
			return
		}
		last = fmt.Sprintf("phase %s, statuses %+v", p.Status.Phase, statuses)
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Pod %s/%s did not run %s within 90s: %s", ns, name, imageID, last)
}

// waitRollout waits until the Deployment's rollout is complete (as
// kubectl rollout status judges it) and its one Pod runs imageID.
func (h *harness) waitRollout(t *testing.T, ns, name, imageID string) {
	t.Helper()
	ctx := context.Background()
	var last string
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		d, err := h.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = fmt.Sprintf("%+v", d.Status)
		if rolledOut(d) {
			l, err := h.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
			if err != nil {
				t.Fatal(err)
			}
			var live []corev1.Pod
			for _, p := range l.Items {
				if p.DeletionTimestamp == nil {
					live = append(live, p)
				}
			}
			if len(live) == 1 && len(live[0].Status.ContainerStatuses) == 1 && live[0].Status.ContainerStatuses[0].ImageID == imageID &&
				live[0].Status.ContainerStatuses[0].State.Running != nil {
				return
			}
			last = fmt.Sprintf("rolled out, Pods %d", len(live))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Deployment %s/%s did not roll out to %s within 120s: %s", ns, name, imageID, last)
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want
}

// TestContinuousValidationJudgesTheDigestRunning: a Pod started by tag where
// no webhook judged it runs an unsigned digest; the tag then moves to a
// signed digest. Continuous validation judges what kubelet reports running,
// not what the tag names now, so the Pod is reported in violation.
func TestContinuousValidationJudgesTheDigestRunning(t *testing.T) {
	h := setup(t)
	localOnly(t, "it starts a webhook process with continuous validation on")
	if h.env.Node == "" {
		t.Skip("the stack runs without a node (SIGNET_STACK_NODE=false): nothing runs Pods")
	}
	ctx := context.Background()
	ref := h.repo + "/drift:v1"
	ran, err := podimage.Push(ctx, ref, ref+"-unsigned")
	if err != nil {
		t.Fatal(err)
	}
	ns := h.plainNamespace(t, nil)
	p, err := h.cs.CoreV1().Pods(ns).Create(ctx, runningPod("drift", ref), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.waitRunning(t, ns, "drift", func(p *corev1.Pod) []corev1.ContainerStatus { return p.Status.ContainerStatuses }, ran.String())

	// The tag moves to a signed digest; what runs stays the unsigned one.
	now, err := podimage.Push(ctx, ref, ref+"-signed")
	if err != nil {
		t.Fatal(err)
	}
	h.sign(t, ref, now.DigestStr())
	h.policy(t, labelled(h.kmsPolicy("e2e-drift", h.repo+"/drift", h.alias, v1alpha1.ModeEnforce)), metav1.ConditionTrue)
	h.instance(t, fmt.Sprintf("signet-e2e-drift-%d", os.Getpid()), 10,
		"--audit-interval=1s", "--namespace=default", fmt.Sprintf("--audit-lease=signet-e2e-drift-%d", os.Getpid()),
		"--no-match-policy=allow", "--mutating-webhook-configuration=")

	h.expectAuditWarning(t, p, "ImageNotAdmissible", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-drift": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities. (judged at the digest running, from the Pod's status; the spec names %s)`,
		ref, ran.DigestStr(), h.alias, ref))
}
