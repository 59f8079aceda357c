package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// TestEveryWorkloadKindIsJudged: an unsigned image in any pod template is
// refused when the workload is applied, not one level down.
func TestEveryWorkloadKindIsJudged(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	img, digest := h.push(t, "kinds:unsigned")
	h.policy(t, h.kmsPolicy("e2e-kinds", h.repo+"/kinds", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	labels := map[string]string{"app": "k"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod("k", img).Spec}
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	selector := &metav1.LabelSelector{MatchLabels: labels}
	alwaysTmpl := *tmpl.DeepCopy()
	alwaysTmpl.Spec.RestartPolicy = corev1.RestartPolicyAlways
	for _, tt := range []struct {
		resource, path string
		obj            client.Object
	}{
		{"replicasets", "spec.template.spec", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: alwaysTmpl}}},
		{"statefulsets", "spec.template.spec", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: selector, Template: alwaysTmpl}}},
		{"daemonsets", "spec.template.spec", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: selector, Template: alwaysTmpl}}},
		{"jobs", "spec.template.spec", &batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl}}},
		{"cronjobs", "spec.jobTemplate.spec.template.spec", &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "*/5 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}},
		{"replicationcontrollers", "spec.template.spec", &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Selector: labels, Template: &alwaysTmpl}}},
	} {
		t.Run(fmt.Sprintf("%T", tt.obj), func(t *testing.T) {
			tt.obj.SetName("k")
			tt.obj.SetNamespace(ns)
			err := h.c.Create(ctx, tt.obj)
			want := h.denial(t, tt.resource, fmt.Sprintf(`image %s@%s (%s.containers[0].image) denied by ClusterImagePolicy "e2e-kinds": no valid signature from authority "ci-kms" (awskms:///%s): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`, img, digest, tt.path, h.alias))
			if err == nil || err.Error() != want {
				t.Fatalf("got:  %v\nwant: %s", err, want)
			}
		})
	}
}

func TestNamespaceAndObjectSelectorsScopeAPolicy(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	img, _ := h.push(t, "scoped:unsigned")
	p := h.kmsPolicy("e2e-scoped", h.repo+"/scoped", h.alias, v1alpha1.ModeEnforce)
	p.Spec.Match = &v1alpha1.PolicyMatch{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}},
		ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "signet.dev/canary", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}}}},
	}
	h.policy(t, p, metav1.ConditionTrue)
	payments := h.namespace(t, "", map[string]string{"team": "payments"})
	web := h.namespace(t, "", map[string]string{"team": "web"})

	if _, err := h.cs.CoreV1().Pods(web).Create(ctx, pod("x", img), metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace outside the selector was judged: %v", err)
	}
	if _, err := h.cs.CoreV1().Pods(payments).Create(ctx, pod("x", img), metav1.CreateOptions{}); err == nil {
		t.Fatal("namespace inside the selector: unsigned pod admitted")
	}
	canary := pod("canary", img)
	canary.Labels = map[string]string{"signet.dev/canary": "true"}
	if _, err := h.cs.CoreV1().Pods(payments).Create(ctx, canary, metav1.CreateOptions{}); err != nil {
		t.Fatalf("object outside the selector was judged: %v", err)
	}
}

func TestPolicyUpdateTakesEffectWithinSeconds(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	img, _ := h.push(t, "later:unsigned")
	p := h.kmsPolicy("e2e-update", h.repo+"/elsewhere", h.alias, v1alpha1.ModeEnforce)
	h.policy(t, p, metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	if _, err := h.cs.CoreV1().Pods(ns).Create(ctx, pod("before", img), metav1.CreateOptions{}); err != nil {
		t.Fatalf("not yet governed (no-match allow), but denied: %v", err)
	}
	begin := time.Now()
	cur := &v1alpha1.ClusterImagePolicy{}
	if err := h.c.Get(ctx, client.ObjectKey{Name: p.Name}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Images = append(cur.Spec.Images, v1alpha1.ImageGlob{Glob: h.repo + "/later"})
	if err := h.c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	h.waitPolicy(t, p.Name, metav1.ConditionTrue)
	if _, err := h.cs.CoreV1().Pods(ns).Create(ctx, pod("after", img), metav1.CreateOptions{}); err == nil {
		t.Fatal("after the update the image is governed, but the pod was admitted")
	}
	t.Logf("policy update in force after %s", time.Since(begin).Round(time.Millisecond))
}

func TestRegistryDownDeniesAsTransient(t *testing.T) {
	h := setup(t)
	p := h.kmsPolicy("e2e-down", "127.0.0.1:1/**", h.alias, v1alpha1.ModeEnforce)
	h.policy(t, p, metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	_, err := h.cs.CoreV1().Pods(ns).Create(context.Background(), pod("x", "127.0.0.1:1/app:v1"), metav1.CreateOptions{})
	prefix := h.denial(t, "pods", `image 127.0.0.1:1/app:v1 (spec.containers[0].image) denied: could not resolve tag "v1" to a digest: `)
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), "connection refused. This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.") {
		t.Fatalf("got: %v", err)
	}
}

// TestNoMatchModes runs a webhook per --no-match-policy value.
func TestNoMatchModes(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	for _, mode := range []string{"deny", "warn"} {
		t.Run(mode, func(t *testing.T) {
			label := "signet-e2e-nomatch-" + mode
			h.instance(t, label, 10, "--no-match-policy="+mode)
			ns := h.plainNamespace(t, map[string]string{label: "true"})
			var warnings []string
			cfg := h.env.RESTConfig(t)
			cfg.WarningHandler = warningCollector(func(msg string) { warnings = append(warnings, msg) })
			_, err := mustClientset(t, cfg).CoreV1().Pods(ns).Create(ctx, pod("x", "registry.example.com/ungoverned/app@sha256:"+strings.Repeat("0", 64)), metav1.CreateOptions{})
			msg := "image registry.example.com/ungoverned/app@sha256:" + strings.Repeat("0", 64) + " (spec.containers[0].image) is not governed by any ClusterImagePolicy. No ClusterImagePolicy governs this image and unmatched images are "
			switch mode {
			case "deny":
				if want := h.denial(t, "pods", msg+"denied: add a policy whose images cover it."); err == nil || err.Error() != want {
					t.Fatalf("got:  %v\nwant: %s", err, want)
				}
			case "warn":
				if err != nil || len(warnings) != 1 || warnings[0] != msg+"allowed with a warning: add a policy whose images cover it." {
					t.Fatalf("err %v, warnings %q", err, warnings)
				}
			}
		})
	}
}

// TestVerifyTimeoutAnswersBeforeTheAPIServerGivesUp: a registry that never
// answers must produce Signet's own denial, not the API server's timeout.
func TestVerifyTimeoutAnswersBeforeTheAPIServerGivesUp(t *testing.T) {
	localOnly(t, "its stalling registry runs in the test process, which an in-cluster webhook cannot reach")
	h := setup(t)
	stall := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(stall)
	host := strings.TrimPrefix(hang.URL, "http://")
	label := "signet-e2e-timeout"
	// A 4 s webhook budget derives a 2 s verification budget.
	h.instance(t, label, 4, "--no-match-policy=allow")
	h.policy(t, h.kmsPolicy("e2e-timeout", host+"/**", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.plainNamespace(t, map[string]string{label: "true"})
	// Had the API server given up first, the error would be its own
	// timeout, not this message.
	err := whenCompiled(t, func() error {
		_, err := h.cs.CoreV1().Pods(ns).Create(context.Background(), pod("x", host+"/app:v1"), metav1.CreateOptions{})
		return err
	})
	want := h.denial(t, "pods", fmt.Sprintf(`image %s/app:v1 (spec.containers[0].image) denied: verification did not finish in time: the registry did not resolve tag "v1". This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.`, host))
	if err == nil || err.Error() != want {
		t.Fatalf("got:  %v\nwant: %s", err, want)
	}
}
