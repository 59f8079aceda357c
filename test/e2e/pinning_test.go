package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// TestDigestPinning: the mutating webhook rewrites images a policy
// admitted by tag to repo:tag@digest, before the validating webhook runs,
// and touches nothing else.
func TestDigestPinning(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	signed, digest := h.push(t, "pin:signed")
	h.sign(t, signed, digest)
	unsigned, unsignedDigest := h.push(t, "pin:unsigned")
	ungoverned, _ := h.push(t, "pin-free:v1")
	h.policy(t, h.kmsPolicy("e2e-pin", h.repo+"/pin", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	pods := h.cs.CoreV1().Pods(ns)
	pinned := signed + "@" + digest

	t.Run("a signed image by tag is pinned to the digest that was verified, verified once", func(t *testing.T) {
		before := h.cacheLookups(t)
		p, err := pods.Create(ctx, pod("signed", signed), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != pinned {
			t.Fatalf("image %q, want %q", got, pinned)
		}
		after := h.cacheLookups(t)
		// The pinning webhook verified; the validating webhook, called with
		// the pinned reference, was answered from the verdict cache.
		if miss, hit := after["miss"]-before["miss"], after["hit"]-before["hit"]; miss != 1 || hit != 1 {
			t.Fatalf("verdict cache: %v misses, %v hits; want 1 and 1", miss, hit)
		}
	})
	t.Run("a deployment's template is pinned, and its pods run the digest", func(t *testing.T) {
		d, err := h.cs.AppsV1().Deployments(ns).Create(ctx, deployment("pinned", signed), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != pinned {
			t.Fatalf("template image %q, want %q", got, pinned)
		}
		var made []corev1.Pod
		waitFor(t, func() bool {
			l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app=pinned"})
			made = nil
			if err == nil {
				made = l.Items
			}
			return len(made) == 1
		})
		if got := made[0].Spec.Containers[0].Image; got != pinned {
			t.Fatalf("pod made by the controllers runs %q, want %q", got, pinned)
		}
	})
	t.Run("an image already named by digest is untouched", func(t *testing.T) {
		byDigest := h.repo + "/pin@" + digest
		p, err := pods.Create(ctx, pod("by-digest", byDigest), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != byDigest {
			t.Fatalf("image %q, want %q", got, byDigest)
		}
	})
	t.Run("an image no policy governs is untouched", func(t *testing.T) {
		p, err := pods.Create(ctx, pod("ungoverned", ungoverned), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != ungoverned {
			t.Fatalf("image %q, want %q", got, ungoverned)
		}
	})
	t.Run("an unsigned image is denied by the validating webhook, with the same message", func(t *testing.T) {
		_, err := pods.Create(ctx, pod("unsigned", unsigned), metav1.CreateOptions{})
		want := h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-pin": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, unsigned, unsignedDigest, h.alias))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
	t.Run("dry-run shows the pin and creates nothing", func(t *testing.T) {
		p, err := pods.Create(ctx, pod("dry", signed), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Spec.Containers[0].Image; got != pinned {
			t.Fatalf("image %q, want %q", got, pinned)
		}
		if _, err := pods.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("dry-run created the pod: %v", err)
		}
	})
	t.Run("kubectl debug: an ephemeral container by tag is pinned", func(t *testing.T) {
		if _, err := pods.Create(ctx, pod("debug-me", pinned), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var got *corev1.Pod
		err := updatePod(ctx, pods, "debug-me", func(p *corev1.Pod) (err error) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: signed}}}
			got, err = pods.UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if img := got.Spec.EphemeralContainers[0].Image; img != pinned {
			t.Fatalf("ephemeral container image %q, want %q", img, pinned)
		}
	})
}

// cacheLookups reads signet_verdict_cache_lookups_total by result from the
// webhook's metrics endpoint.
func (h *harness) cacheLookups(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	const prefix = `signet_verdict_cache_lookups_total{result="`
	sc := bufio.NewScanner(bytes.NewReader(h.scrape(t)))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		result, value, _ := strings.Cut(rest, `"} `)
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		out[result] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
