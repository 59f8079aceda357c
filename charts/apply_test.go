package charts

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/test/stack"
)

// dryRunOnly are kinds the apply test sends as server-side dry runs only:
// the API server validates them, nothing is stored. Other test packages run
// at the same time against the same API server.
var dryRunOnly = map[string]string{
	"CustomResourceDefinition": "the ClusterImagePolicy CRD is shared with every test package",
	"ValidatingWebhookConfiguration": "its ClusterImagePolicy webhook has no namespaceSelector (policies are cluster-scoped), " +
		"so a stored one would send the policy writes of every test package to a Service with no Pod behind it",
	"MutatingWebhookConfiguration": "it judges every namespace but the exempt ones, so a stored one would send the other " +
		"test packages' Pods to a Service with no Pod behind it",
}

// notServed are API groups the local stack does not serve, and why.
var notServed = map[string]string{
	"monitoring.coreos.com": "the stack runs no Prometheus Operator (ServiceMonitor CRD)",
	"cert-manager.io":       "the stack runs no cert-manager (Certificate, Issuer CRDs)",
}

// TestChartAppliesToAPIServer applies the rendered chart, hooks included,
// server-side to the local stack's API server in a throw-away namespace and
// release: every object must be accepted, and the controllers must be able
// to create the Deployment's and the uninstall Job's Pods in a namespace
// that enforces the "restricted" Pod Security Standard.
func TestChartAppliesToAPIServer(t *testing.T) {
	env := stack.Load(t)
	c, err := client.New(env.RESTConfig(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, values string }{
		{"defaults", ""},
		{"optional objects", `
serviceMonitor: {enabled: true}
networkPolicy:
  enabled: true
  metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
aws:
  region: us-east-1
  signerRoots: {pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"}
`},
		{"cert-manager", "certManager: {enabled: true}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := throwAwayNamespace(t, c)
			// The release is named after the namespace: its cluster-scoped
			// objects (ClusterRoles, bindings) cannot collide with anyone's.
			r := render(t, ns, ns, tc.values)
			applyRelease(t, c, r)
			waitForPods(t, c, r)
			if tc.name == "defaults" {
				checkNotesPolicy(t, env, c, r)
				checkWebhookRunsWithChartRBAC(t, env, c, r)
				checkUninstallJob(t, env, c, r)
			}
		})
	}
}

func throwAwayNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "signet-chart-", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	return ns.Name
}

// applyRelease applies the release's objects, then its hooks, in Helm's
// install order, and removes what it stored cluster-wide when the test ends.
func applyRelease(t *testing.T, c client.Client, r *rendered) {
	t.Helper()
	objs := slices.Clone(r.objects)
	rank := func(kind string) int {
		if i := slices.Index(releaseutil.InstallOrder, kind); i >= 0 {
			return i
		}
		return len(releaseutil.InstallOrder)
	}
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i].GetKind()) < rank(objs[j].GetKind()) })
	hooks := slices.Clone(r.hooks)
	sort.SliceStable(hooks, func(i, j int) bool { return hooks[i].hook.Weight < hooks[j].hook.Weight })
	for _, h := range hooks {
		objs = append(objs, h.obj)
	}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		what := gvk.Kind + " " + obj.GetName()
		mapping, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			if reason, ok := notServed[gvk.Group]; ok {
				t.Logf("not applied: %s (%s): %s", what, gvk.GroupVersion(), reason)
				continue
			}
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		opts := []client.ApplyOption{client.FieldOwner("signet-chart-test"), client.ForceOwnership}
		reason, dryRun := dryRunOnly[gvk.Kind]
		if dryRun {
			opts = append(opts, client.DryRunAll)
		} else if mapping.Scope.Name() == meta.RESTScopeNameRoot {
			obj := obj.DeepCopy()
			t.Cleanup(func() {
				if err := c.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("cleaning up %s: %v", what, err)
				}
			})
		}
		if err := c.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), opts...); err != nil {
			t.Errorf("the API server rejects %s: %v", what, err)
			continue
		}
		if dryRun {
			t.Logf("accepted as a dry run: %s (%s)", what, reason)
		}
	}
}

// waitForPods waits until the Deployment's ReplicaSet and the uninstall Job
// have created their Pods (the stack has no scheduler or kubelet, so they
// stay Pending): Pod Security admission, the ServiceAccount and the priority
// class all accepted them.
func waitForPods(t *testing.T, c client.Client, r *rendered) {
	t.Helper()
	d := deployment(t, r)
	want := int(*d.Spec.Replicas)
	job := decode[batchv1.Job](t, hookObject(t, r, "Job"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		webhook, uninstall := countPods(t, c, r.namespace, d.Spec.Selector), countPods(t, c, r.namespace, job.Spec.Selector)
		if webhook == want && uninstall >= 1 {
			return
		}
		// A controller that failed to create a Pod retries with a backoff:
		// report its reason at once.
		if f := failures(t, c, r.namespace); strings.Contains(f, "FailedCreate") {
			t.Fatalf("%d of %d webhook Pods, %d uninstall Pods; controllers say:\n%s", webhook, want, uninstall, f)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d of %d webhook Pods, %d uninstall Pods; controllers say:\n%s",
				webhook, want, uninstall, failures(t, c, r.namespace))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func countPods(t *testing.T, c client.Client, ns string, sel *metav1.LabelSelector) int {
	t.Helper()
	var pods corev1.PodList
	selector := labels.Everything()
	if sel != nil {
		var err error
		if selector, err = metav1.LabelSelectorAsSelector(sel); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		t.Fatal(err)
	}
	return len(pods.Items)
}

// failures collects why controllers could not create Pods: the
// ReplicaSets' and the Job's conditions and the namespace's warning events.
func failures(t *testing.T, c client.Client, ns string) string {
	t.Helper()
	var out []string
	var rs appsv1.ReplicaSetList
	if err := c.List(context.Background(), &rs, client.InNamespace(ns)); err == nil {
		for _, s := range rs.Items {
			for _, cond := range s.Status.Conditions {
				out = append(out, fmt.Sprintf("ReplicaSet %s: %s %s", s.Name, cond.Reason, cond.Message))
			}
		}
	}
	var events corev1.EventList
	if err := c.List(context.Background(), &events, client.InNamespace(ns)); err == nil {
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning {
				out = append(out, fmt.Sprintf("%s %s: %s %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message))
			}
		}
	}
	return strings.Join(out, "\n")
}

// checkNotesPolicy: the ClusterImagePolicy NOTES.txt tells the admin to
// apply is one the CRD accepts (a server-side dry run).
func checkNotesPolicy(t *testing.T, env *stack.Env, c client.Client, r *rendered) {
	t.Helper()
	notes := r.release.Info.Notes
	_, rest, ok := strings.Cut(notes, "cat <<'YAML' | kubectl apply -f -\n")
	if !ok {
		t.Fatalf("NOTES.txt shows no policy to apply:\n%s", notes)
	}
	body, _, ok := strings.Cut(rest, "\n     YAML\n")
	if !ok {
		t.Fatalf("NOTES.txt: the policy's heredoc does not end:\n%s", notes)
	}
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "     "))
	}
	policy := &unstructured.Unstructured{}
	if err := yaml.UnmarshalStrict([]byte(strings.Join(lines, "\n")), &policy.Object); err != nil {
		t.Fatalf("the policy in NOTES.txt is not YAML: %v\n%s", err, body)
	}
	if mode, _, _ := unstructured.NestedString(policy.Object, "spec", "mode"); mode != "Warn" {
		t.Errorf("NOTES.txt suggests a policy in mode %q; roll out with Warn first", mode)
	}
	env.InstallCRD(t)
	if err := c.Create(t.Context(), policy, client.DryRunAll); err != nil {
		t.Errorf("the API server rejects the policy NOTES.txt suggests: %v\n%s", err, body)
	}
}
