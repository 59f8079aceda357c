package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

const breakGlassReason = "INC-4711: signing service down, hotfix for checkout"

// TestBreakGlass: through the real API server, an annotated Pod and an
// annotated Deployment's Pods are admitted despite a policy that allows
// break-glass, pinned, warned about, recorded as Events, logged with the
// requesting user and counted; a policy without opt-in ignores the
// annotation and says so; a short reason is refused.
func TestBreakGlass(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	hotfix, hotfixDigest := h.push(t, "hotfix:v1")
	strict, strictDigest := h.push(t, "strict:v1")
	allows := h.kmsPolicy("e2e-bg-allows", h.repo+"/hotfix", h.alias, v1alpha1.ModeEnforce)
	allows.Spec.BreakGlass = &v1alpha1.BreakGlass{Allowed: true}
	h.policy(t, allows, metav1.ConditionTrue)
	h.policy(t, h.kmsPolicy("e2e-bg-strict", h.repo+"/strict", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ready := meta.FindStatusCondition(h.waitPolicy(t, allows.Name, metav1.ConditionTrue).Status.Conditions, v1alpha1.ConditionReady)
	if want := "enforcing 1 image globs with 1 authorities; break-glass allowed (signet.dev/break-glass annotation)"; ready.Message != want {
		t.Errorf("Ready message %q, want %q", ready.Message, want)
	}
	ns := h.namespace(t, "", nil)

	var warnings []string
	cfg := h.env.RESTConfig(t)
	cfg.WarningHandler = warningCollector(func(msg string) { warnings = append(warnings, msg) })
	cs := mustClientset(t, cfg)
	me, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	user := me.Status.UserInfo

	noSig := fmt.Sprintf(`no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, h.alias)
	pinned := hotfix + "@" + hotfixDigest
	annotate := func(o metav1.Object, reason string) {
		o.SetAnnotations(map[string]string{v1alpha1.BreakGlassAnnotation: reason})
	}

	t.Run("an annotated Pod is admitted, pinned, warned about, recorded, logged and counted", func(t *testing.T) {
		warnings = nil
		p := pod("hotfix", hotfix)
		annotate(p, breakGlassReason)
		got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("break-glass Pod denied: %v", err)
		}
		if img := got.Spec.Containers[0].Image; img != pinned {
			t.Errorf("image %q, want it pinned to the digest admitted: %q", img, pinned)
		}
		want := fmt.Sprintf(`image %s (spec.containers[0].image) admitted by break-glass despite ClusterImagePolicy "e2e-bg-allows": %s`, pinned, noSig)
		if len(warnings) != 1 || warnings[0] != want {
			t.Errorf("warnings %q\nwant [%q]", warnings, want)
		}

		ev := h.waitEvent(t, ns, "Pod", got.Name, "BreakGlass")
		note := fmt.Sprintf(`Admitted by break-glass despite ClusterImagePolicy "e2e-bg-allows", requested by %s with reason %q: image %s (spec.containers[0].image).`, user.Username, breakGlassReason, pinned)
		if ev.Type != corev1.EventTypeWarning || ev.Reason != "BreakGlass" || ev.Action != "Admit" || ev.Note != note || ev.Regarding.UID != got.UID {
			t.Errorf("event %s %s %s on uid %s: %q\nwant Warning BreakGlass Admit on uid %s: %q", ev.Type, ev.Reason, ev.Action, ev.Regarding.UID, ev.Note, got.UID, note)
		}

		if !target.cluster {
			line := h.breakGlassLogLine(t, ns, got.Name)
			if line.Level != "warn" || line.Username != user.Username || strings.Join(line.Groups, ",") != strings.Join(user.Groups, ",") ||
				line.Reason != breakGlassReason || strings.Join(line.Images, ",") != pinned || strings.Join(line.Policies, ",") != "e2e-bg-allows" {
				t.Errorf("log line %+v\nwant level warn, username %q, groups %q, reason %q, images [%s], policies [e2e-bg-allows]", line, user.Username, user.Groups, breakGlassReason, pinned)
			}
		}
		if got := h.breakGlassCount(t, "e2e-bg-allows", ns); got != 1 {
			t.Errorf("signet_break_glass_admissions_total = %v, want 1", got)
		}

		// A server-side dry run is warned about the same, and not counted
		// (the count is taken before the webhook answers).
		warnings = nil
		dry := pod("hotfix-dry", hotfix)
		annotate(dry, breakGlassReason)
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatalf("dry run: %v", err)
		}
		if len(warnings) != 1 || warnings[0] != want {
			t.Errorf("dry-run warnings %q\nwant [%q]", warnings, want)
		}
		if got := h.breakGlassCount(t, "e2e-bg-allows", ns); got != 1 {
			t.Errorf("after a dry run signet_break_glass_admissions_total = %v, want 1", got)
		}
	})

	t.Run("a Deployment's Pod template carries the annotation to its Pods", func(t *testing.T) {
		d := deployment("hotfix-deploy", hotfix)
		annotate(&d.Spec.Template, breakGlassReason)
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatalf("break-glass Deployment denied: %v", err)
		}
		var made *corev1.Pod
		waitFor(t, func() bool {
			l, err := h.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=hotfix-deploy"})
			if err != nil || len(l.Items) != 1 {
				return false
			}
			made = &l.Items[0]
			return true
		})
		if img := made.Spec.Containers[0].Image; img != pinned {
			t.Errorf("the Deployment's Pod runs %q, want %q", img, pinned)
		}
		ev := h.waitEvent(t, ns, "Pod", made.Name, "BreakGlass")
		// The ReplicaSet controller creates the Pod: its identity depends
		// on how the control plane runs, so only the rest is compared.
		head, tail := `Admitted by break-glass despite ClusterImagePolicy "e2e-bg-allows", requested by `, fmt.Sprintf(` with reason %q: image %s (spec.containers[0].image).`, breakGlassReason, pinned)
		if !strings.HasPrefix(ev.Note, head) || !strings.HasSuffix(ev.Note, tail) {
			t.Errorf("the Pod's event: %q\nwant %q…%q", ev.Note, head, tail)
		}
		dev := h.waitEvent(t, ns, "Deployment", "hotfix-deploy", "BreakGlass")
		note := fmt.Sprintf(`Admitted by break-glass despite ClusterImagePolicy "e2e-bg-allows", requested by %s with reason %q: image %s (spec.template.spec.containers[0].image).`, user.Username, breakGlassReason, pinned)
		if dev.Note != note {
			t.Errorf("the Deployment's event: %q\nwant %q", dev.Note, note)
		}
		// The Pod before, then the Deployment, its ReplicaSet and its Pod.
		waitFor(t, func() bool { return h.breakGlassCount(t, "e2e-bg-allows", ns) == 4 })
	})

	t.Run("on the Deployment itself the annotation is ignored, with a warning", func(t *testing.T) {
		warnings = nil
		d := deployment("own-annotation", hotfix)
		annotate(d, breakGlassReason)
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		want := h.denial(t, "deployments", fmt.Sprintf(`image %s (spec.template.spec.containers[0].image) denied by ClusterImagePolicy "e2e-bg-allows": %s`, pinned, noSig))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
		ignored := "annotation signet.dev/break-glass on the Deployment itself is ignored: set it in spec.template.metadata.annotations, so the Pods it creates carry it too"
		if len(warnings) != 1 || warnings[0] != ignored {
			t.Errorf("warnings %q\nwant [%q]", warnings, ignored)
		}
	})

	t.Run("a policy without opt-in ignores the annotation and says so", func(t *testing.T) {
		p := pod("strict", strict)
		annotate(p, breakGlassReason)
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		want := h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-bg-strict": %s Break-glass does not apply: ClusterImagePolicy "e2e-bg-strict" does not allow it (spec.breakGlass.allowed is not true).`, strict, strictDigest, noSig))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})

	t.Run("a short reason is refused", func(t *testing.T) {
		p := pod("short", hotfix)
		annotate(p, "hotfix")
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		want := h.denial(t, "pods", `annotation signet.dev/break-glass in metadata.annotations: break-glass reason "hotfix" is too short (6 characters, at least 10): say why the images must run unverified, e.g. "INC-4711: signing service down, hotfix for checkout"`)
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
}

// TestStaticAuthorities: a static pass policy admits unsigned images and
// counts as governing them under --no-match-policy=deny; a static fail
// policy denies with its message.
func TestStaticAuthorities(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	vendor, vendorDigest := h.push(t, "vendor:v1")
	hub, hubDigest := h.push(t, "hub:v1")
	static := func(name, glob string, s v1alpha1.StaticAuthority) *v1alpha1.ClusterImagePolicy {
		return &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterImagePolicySpec{
			Images: []v1alpha1.ImageGlob{{Glob: glob}}, Authorities: []v1alpha1.Authority{{Name: "static", Static: &s}},
		}}
	}
	h.policy(t, static("e2e-static-pass", h.repo+"/vendor", v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass}), metav1.ConditionTrue)
	h.policy(t, static("e2e-static-fail", h.repo+"/hub", v1alpha1.StaticAuthority{Action: v1alpha1.StaticFail, Message: "Images from hub are not allowed here: use " + h.repo + "/vendor instead."}), metav1.ConditionTrue)
	ready := meta.FindStatusCondition(h.waitPolicy(t, "e2e-static-pass", metav1.ConditionTrue).Status.Conditions, v1alpha1.ConditionReady)
	if want := "admitting the images of 1 image globs without a signature: every authority is static pass"; ready.Message != want {
		t.Errorf("Ready message %q, want %q", ready.Message, want)
	}

	label := fmt.Sprintf("signet-e2e-static-%d", os.Getpid())
	h.instance(t, label, 10, "--no-match-policy=deny")
	ns := h.plainNamespace(t, map[string]string{label: "true"})
	pods := h.cs.CoreV1().Pods(ns)

	t.Run("static pass admits an unsigned image under no-match deny", func(t *testing.T) {
		if _, err := pods.Create(ctx, pod("vendor", vendor+"@"+vendorDigest), metav1.CreateOptions{}); err != nil {
			t.Fatalf("static pass denied: %v", err)
		}
	})
	t.Run("an image no policy governs is still denied", func(t *testing.T) {
		other, otherDigest := h.push(t, "other:v1")
		_, err := pods.Create(ctx, pod("other", other+"@"+otherDigest), metav1.CreateOptions{})
		want := h.denial(t, "pods", fmt.Sprintf("image %s@%s (spec.containers[0].image) is not governed by any ClusterImagePolicy. No ClusterImagePolicy governs this image and unmatched images are denied: add a policy whose images cover it.", other, otherDigest))
		if err == nil || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
	t.Run("static fail denies with the policy's message", func(t *testing.T) {
		_, err := pods.Create(ctx, pod("hub", hub+"@"+hubDigest), metav1.CreateOptions{})
		want := h.denial(t, "pods", fmt.Sprintf(`image %s@%s (spec.containers[0].image) denied by ClusterImagePolicy "e2e-static-fail": Images from hub are not allowed here: use %s/vendor instead.`, hub, hubDigest, h.repo))
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("got:  %v\nwant: %s", err, want)
		}
	})
}

// logLine is the webhook's JSON log line of a break-glass admission.
type logLine struct {
	Level      string   `json:"level"`
	Msg        string   `json:"msg"`
	Namespace  string   `json:"namespace"`
	ObjectName string   `json:"objectName"`
	Username   string   `json:"username"`
	Groups     []string `json:"groups"`
	Reason     string   `json:"reason"`
	Policies   []string `json:"policies"`
	Images     []string `json:"images"`
}

// breakGlassLogLine finds the break-glass line about ns/name in the shared
// webhook's log. The line is written before the webhook answers.
func (h *harness) breakGlassLogLine(t *testing.T, ns, name string) logLine {
	t.Helper()
	raw, err := os.ReadFile(h.webhook.Log)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "admitted by break-glass" && l.Namespace == ns && l.ObjectName == name {
			return l
		}
	}
	t.Fatalf("no break-glass log line for %s/%s in %s", ns, name, h.webhook.Log)
	return logLine{}
}

// breakGlassCount reads signet_break_glass_admissions_total for a policy
// and namespace from the webhook's metrics; 0 when absent.
func (h *harness) breakGlassCount(t *testing.T, policy, ns string) float64 {
	t.Helper()
	prefix := fmt.Sprintf(`signet_break_glass_admissions_total{namespace=%q,policy=%q} `, ns, policy)
	sc := bufio.NewScanner(bytes.NewReader(h.scrape(t)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	return 0
}
