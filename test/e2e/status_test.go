package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// TestStatusWritesDoNotRecompile: another replica writing a policy's
// status (replicas' messages can differ) must not wake this webhook's
// reconciler, or two replicas would recompile and rewrite each other's
// status in a loop. A spec change still recompiles at once.
func TestStatusWritesDoNotRecompile(t *testing.T) {
	localOnly(t, "it counts the compilations in the local webhook's log")
	h := setup(t)
	ctx := context.Background()
	p := h.kmsPolicy("e2e-status", h.repo+"/status/**", h.alias, v1alpha1.ModeEnforce)
	h.policy(t, p, metav1.ConditionTrue)
	compiled := func() int {
		b, err := os.ReadFile(h.webhook.Log)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, `"msg":"policy compiled"`) && strings.Contains(line, `"name":"e2e-status"`) {
				n++
			}
		}
		return n
	}
	before := compiled()
	if before == 0 {
		t.Fatal("no compilation of e2e-status in the webhook's log")
	}

	// Another writer (a replica with another message) patches the status.
	for i := 0; i < 3; i++ {
		cur := &v1alpha1.ClusterImagePolicy{}
		if err := h.c.Get(ctx, client.ObjectKey{Name: p.Name}, cur); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(cur.DeepCopy())
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
			Reason: "Compiled", Message: "written by another replica " + string(rune('a'+i)), ObservedGeneration: cur.Generation})
		if err := h.c.Status().Patch(ctx, cur, patch); err != nil {
			t.Fatal(err)
		}
	}
	// Synchronise on a marker instead of waiting: the reconciler sees events
	// in watch order and works one key at a time, so once a policy created
	// after the status writes is compiled, any compile those writes caused
	// is already in the log.
	marker := h.kmsPolicy("e2e-status-marker", h.repo+"/status-marker/**", h.alias, v1alpha1.ModeEnforce)
	h.policy(t, marker, metav1.ConditionTrue)
	if got := compiled(); got != before {
		t.Fatalf("status writes recompiled the policy %d times", got-before)
	}
	cur := &v1alpha1.ClusterImagePolicy{}
	if err := h.c.Get(ctx, client.ObjectKey{Name: p.Name}, cur); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Message != "written by another replica c" {
		t.Fatalf("the webhook rewrote the status at once: %+v", c)
	}

	// A spec change recompiles.
	cur.Spec.Images = append(cur.Spec.Images, v1alpha1.ImageGlob{Glob: h.repo + "/status-more/**"})
	if err := h.c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	h.waitPolicy(t, p.Name, metav1.ConditionTrue)
	if got := compiled(); got != before+1 {
		t.Fatalf("a spec change compiled the policy %d times, want 1", got-before)
	}
}
