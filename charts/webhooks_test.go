package charts

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkWebhookConfigurations: the entries are config/webhook/manifests.yaml's
// (generated from pkg/admission's table of kinds) but for what the chart must fill
// in, and those are filled in from the values.
func checkWebhookConfigurations(t *testing.T, r *rendered) {
	var wantV admissionregistrationv1.ValidatingWebhookConfiguration
	var wantM admissionregistrationv1.MutatingWebhookConfiguration
	for _, o := range readObjects(t, "../config/webhook/manifests.yaml") {
		switch o.GetKind() {
		case "ValidatingWebhookConfiguration":
			wantV = *decode[admissionregistrationv1.ValidatingWebhookConfiguration](t, o)
		case "MutatingWebhookConfiguration":
			wantM = *decode[admissionregistrationv1.MutatingWebhookConfiguration](t, o)
		}
	}
	failure := admissionregistrationv1.FailurePolicyType(r.str(t, "webhook.failurePolicy"))
	timeout := int32(r.integer(t, "webhook.timeoutSeconds"))
	svc := decode[corev1.Service](t, r.mustFind(t, "Service", r.fullname(t)+"-webhook"))
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("webhook") {
		t.Errorf("Service ports %+v, want 443 to the container's webhook port", svc.Spec.Ports)
	}
	pod := deployment(t, r).Spec.Template
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Service selects %v, not the webhook Pods %v", svc.Spec.Selector, pod.Labels)
	}
	annotations := map[string]string(nil)
	if r.boolean(t, "certManager.enabled") {
		annotations = map[string]string{"cert-manager.io/inject-ca-from": r.namespace + "/" + r.fullname(t) + "-serving"}
	}

	// common checks one webhook, returning it with the chart's parts cleared.
	common := func(name string, client *admissionregistrationv1.WebhookClientConfig, fp *admissionregistrationv1.FailurePolicyType,
		ts *int32, sel **metav1.LabelSelector, generated bool) {
		t.Helper()
		if client.Service == nil || client.Service.Name != svc.Name || client.Service.Namespace != r.namespace || client.Service.Port != nil {
			t.Errorf("%s calls %+v, want Service %s/%s on 443", name, client.Service, r.namespace, svc.Name)
		} else {
			client.Service.Name, client.Service.Namespace = "", ""
		}
		if client.CABundle != nil {
			t.Errorf("%s: the chart renders a caBundle; its injector must own it", name)
		}
		if fp == nil || *fp != failure {
			t.Errorf("%s: failurePolicy %v, want %s", name, fp, failure)
		}
		if ts == nil || *ts != timeout {
			t.Errorf("%s: timeoutSeconds %v, want %d", name, ts, timeout)
		}
		if *sel != nil || generated {
			checkNamespaceSelector(t, r, name, *sel)
			*sel = nil
		}
	}
	clearGenerated := func(client *admissionregistrationv1.WebhookClientConfig, fp **admissionregistrationv1.FailurePolicyType, ts **int32, sel **metav1.LabelSelector) bool {
		client.Service.Name, client.Service.Namespace = "", ""
		*fp, *ts = &failure, nil
		had := *sel != nil
		*sel = nil
		return had
	}

	vwc := decode[admissionregistrationv1.ValidatingWebhookConfiguration](t, r.mustFind(t, "ValidatingWebhookConfiguration", r.fullname(t)+"-validating"))
	if !cmp.Equal(vwc.Annotations, annotations) {
		t.Errorf("ValidatingWebhookConfiguration annotations %v, want %v", vwc.Annotations, annotations)
	}
	namespaced := map[string]bool{}
	for i := range wantV.Webhooks {
		w := &wantV.Webhooks[i]
		namespaced[w.Name] = clearGenerated(&w.ClientConfig, &w.FailurePolicy, &w.TimeoutSeconds, &w.NamespaceSelector)
	}
	for i := range vwc.Webhooks {
		w := &vwc.Webhooks[i]
		common(w.Name, &w.ClientConfig, w.FailurePolicy, w.TimeoutSeconds, &w.NamespaceSelector, namespaced[w.Name])
		w.TimeoutSeconds = nil
	}
	if diff := cmp.Diff(wantV.Webhooks, vwc.Webhooks); diff != "" {
		t.Errorf("validating webhooks differ from config/webhook/manifests.yaml (-generated +chart):\n%s", diff)
	}

	mwcObj := r.find("MutatingWebhookConfiguration", r.fullname(t)+"-mutating")
	if !r.boolean(t, "digestPinning") {
		if mwcObj != nil {
			t.Error("digest pinning is off, yet the MutatingWebhookConfiguration is rendered")
		}
		return
	}
	if mwcObj == nil {
		t.Fatal("digest pinning is on, but no MutatingWebhookConfiguration is rendered")
	}
	mwc := decode[admissionregistrationv1.MutatingWebhookConfiguration](t, mwcObj)
	if !cmp.Equal(mwc.Annotations, annotations) {
		t.Errorf("MutatingWebhookConfiguration annotations %v, want %v", mwc.Annotations, annotations)
	}
	for i := range wantM.Webhooks {
		w := &wantM.Webhooks[i]
		namespaced[w.Name] = clearGenerated(&w.ClientConfig, &w.FailurePolicy, &w.TimeoutSeconds, &w.NamespaceSelector)
	}
	for i := range mwc.Webhooks {
		w := &mwc.Webhooks[i]
		common(w.Name, &w.ClientConfig, w.FailurePolicy, w.TimeoutSeconds, &w.NamespaceSelector, namespaced[w.Name])
		w.TimeoutSeconds = nil
	}
	if diff := cmp.Diff(wantM.Webhooks, mwc.Webhooks); diff != "" {
		t.Errorf("mutating webhooks differ from config/webhook/manifests.yaml (-generated +chart):\n%s", diff)
	}
}

// checkNamespaceSelector: a webhook on namespaced objects skips exactly the
// exempt namespaces and the release's, and adds webhook.namespaceSelector.
func checkNamespaceSelector(t *testing.T, r *rendered, name string, sel *metav1.LabelSelector) {
	if sel == nil {
		t.Errorf("%s: no namespaceSelector: the exempt namespaces would be judged", name)
		return
	}
	exempt := exemptNamespaces(t, r)
	want := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: exempt,
	}}}
	extra, err := decodeJSON[metav1.LabelSelector](r.val(t, "webhook.namespaceSelector"))
	if err != nil {
		t.Fatalf("webhook.namespaceSelector: %v", err)
	}
	want.MatchExpressions = append(want.MatchExpressions, extra.MatchExpressions...)
	want.MatchLabels = extra.MatchLabels
	if !apiequality.Semantic.DeepEqual(*sel, want) {
		t.Errorf("%s: namespaceSelector %+v, want %+v", name, sel, want)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, ns := range exempt {
		if s.Matches(labels.Set{"kubernetes.io/metadata.name": ns}) {
			t.Errorf("%s judges exempt namespace %s", name, ns)
		}
	}
}

// checkCRD: the CRD is config/crd/bases', installed and kept as asked.
func checkCRD(t *testing.T, r *rendered) {
	want := readObjects(t, "../config/crd/bases/signet.dev_clusterimagepolicies.yaml")[0]
	got := r.find("CustomResourceDefinition", want.GetName())
	if !r.boolean(t, "crds.install") {
		if got != nil {
			t.Error("crds.install is false, yet the CRD is rendered")
		}
		return
	}
	if got == nil {
		t.Fatal("crds.install is true, but no CRD is rendered")
	}
	if !apiequality.Semantic.DeepEqual(got.Object["spec"], want.Object["spec"]) {
		t.Errorf("the chart's CRD spec differs from config/crd/bases:\n%s", cmp.Diff(want.Object["spec"], got.Object["spec"]))
	}
	ann := got.GetAnnotations()
	for k, v := range want.GetAnnotations() {
		if ann[k] != v {
			t.Errorf("CRD annotation %s=%q, want %q", k, ann[k], v)
		}
	}
	if keep := ann["helm.sh/resource-policy"] == "keep"; keep != r.boolean(t, "crds.keep") {
		t.Errorf("CRD resource-policy annotation %q with crds.keep %v", ann["helm.sh/resource-policy"], r.boolean(t, "crds.keep"))
	}
}

// checkOpenReportsCRD: the OpenReports Report CRD is the module's, rendered
// only with crds.openReports, and kept as crds.keep says.
func checkOpenReportsCRD(t *testing.T, r *rendered) {
	want := readObjects(t, openReportsCRD(t))[0]
	got := r.find("CustomResourceDefinition", want.GetName())
	if !r.boolean(t, "crds.openReports") {
		if got != nil {
			t.Error("crds.openReports is false, yet the Report CRD is rendered")
		}
		return
	}
	if got == nil {
		t.Fatal("crds.openReports is true, but no Report CRD is rendered")
	}
	if !apiequality.Semantic.DeepEqual(got.Object["spec"], want.Object["spec"]) {
		t.Errorf("the chart's Report CRD spec differs from the module's:\n%s", cmp.Diff(want.Object["spec"], got.Object["spec"]))
	}
	if keep := got.GetAnnotations()["helm.sh/resource-policy"] == "keep"; keep != r.boolean(t, "crds.keep") {
		t.Errorf("Report CRD resource-policy annotation with crds.keep %v", r.boolean(t, "crds.keep"))
	}
}

// checkRBAC: the ClusterRole grants at least what the code's markers ask
// for (config/rbac/role.yaml), and the certificate management exactly what
// it needs, by name.
func checkRBAC(t *testing.T, r *rendered) {
	fullname := r.fullname(t)
	role := decode[rbacv1.ClusterRole](t, r.mustFind(t, "ClusterRole", fullname))
	generated := decode[rbacv1.ClusterRole](t, readObjects(t, "../config/rbac/role.yaml")[0])
	granted := map[string]bool{}
	for _, rule := range role.Rules {
		if len(rule.ResourceNames) > 0 {
			continue
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					granted[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	for _, rule := range generated.Rules {
		if len(rule.ResourceNames) > 0 {
			continue // named objects: the chart names its own (below)
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					if !granted[g+"/"+res+":"+v] {
						t.Errorf("config/rbac/role.yaml grants %s on %s (group %q), the chart's ClusterRole does not", v, res, g)
					}
				}
			}
		}
	}
	// Webhook configurations are reached by name only: the certificate
	// management updates the chart's two (CA injection), and the validators
	// watch the mutating one to know whether digest pinning is installed.
	builtin := !r.boolean(t, "certManager.enabled")
	wantNamed := map[string][]string{}
	if builtin {
		wantNamed["validatingwebhookconfigurations get,update,patch"] = []string{fullname + "-validating"}
		if r.boolean(t, "digestPinning") {
			wantNamed["mutatingwebhookconfigurations get,update,patch"] = []string{fullname + "-mutating"}
		}
	}
	if r.boolean(t, "digestPinning") {
		wantNamed["mutatingwebhookconfigurations get,list,watch"] = []string{fullname + "-mutating"}
	}
	gotNamed := map[string][]string{}
	for _, rule := range role.Rules {
		if !slices.Contains(rule.APIGroups, "admissionregistration.k8s.io") {
			continue
		}
		if len(rule.ResourceNames) == 0 {
			t.Errorf("ClusterRole rule %+v reaches every webhook configuration of the cluster", rule)
		}
		for _, res := range rule.Resources {
			key := res + " " + strings.Join(rule.Verbs, ",")
			gotNamed[key] = append(gotNamed[key], rule.ResourceNames...)
		}
	}
	if !cmp.Equal(gotNamed, wantNamed) {
		t.Errorf("webhook configurations the ClusterRole reaches (resource verbs: names): %v, want %v", gotNamed, wantNamed)
	}
	binding := decode[rbacv1.ClusterRoleBinding](t, r.mustFind(t, "ClusterRoleBinding", fullname))
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: serviceAccountName(t, r), Namespace: r.namespace}
	if binding.RoleRef.Name != fullname || !slices.Equal(binding.Subjects, []rbacv1.Subject{wantSubject}) {
		t.Errorf("ClusterRoleBinding %+v %+v, want %s bound to %+v", binding.RoleRef, binding.Subjects, fullname, wantSubject)
	}
	if r.boolean(t, "serviceAccount.create") {
		sa := r.mustFind(t, "ServiceAccount", serviceAccountName(t, r))
		if got, want := sa.GetAnnotations()["eks.amazonaws.com/role-arn"], r.str(t, "serviceAccount.roleArn"); got != want {
			t.Errorf("IRSA annotation %q, want serviceAccount.roleArn %q", got, want)
		}
	}
	roleObj := r.find("Role", fullname+"-cert")
	if !builtin {
		if roleObj != nil {
			t.Error("cert-manager provides the certificate, yet the chart grants Secret access in its namespace")
		}
		return
	}
	if roleObj == nil {
		t.Fatal("no Role for the built-in certificate Secret")
	}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{fullname + "-webhook-cert"}, Verbs: []string{"get", "update", "patch"}},
	}
	if got := decode[rbacv1.Role](t, roleObj).Rules; !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("certificate Role rules:\n%s", cmp.Diff(want, got))
	}
	rb := decode[rbacv1.RoleBinding](t, r.mustFind(t, "RoleBinding", fullname+"-cert"))
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != fullname+"-cert" || !slices.Equal(rb.Subjects, []rbacv1.Subject{wantSubject}) {
		t.Errorf("certificate RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
	}
}

// hookObject returns the uninstall hook of kind.
func hookObject(t testing.TB, r *rendered, kind string) *unstructured.Unstructured {
	t.Helper()
	for _, h := range r.hooks {
		if h.obj.GetKind() == kind {
			return h.obj
		}
	}
	t.Fatalf("no %s hook", kind)
	return nil
}

// checkUninstallHook: a pre-delete Job deletes the two webhook
// configurations, with RBAC created before it and allowed nothing else.
func checkUninstallHook(t *testing.T, r *rendered) {
	if !r.boolean(t, "uninstallHook.enabled") {
		if len(r.hooks) > 0 {
			t.Errorf("uninstallHook.enabled is false, yet there are %d hooks", len(r.hooks))
		}
		return
	}
	name := r.fullname(t) + "-uninstall"
	validating, mutating := r.fullname(t)+"-validating", r.fullname(t)+"-mutating"
	weights := map[string]int{}
	for _, h := range r.hooks {
		kind := h.obj.GetKind()
		if h.obj.GetName() != name {
			t.Errorf("hook %s %s, want the name %s", kind, h.obj.GetName(), name)
		}
		if !slices.Equal(h.hook.Events, []release.HookEvent{release.HookPreDelete}) {
			t.Errorf("hook %s runs on %v, want pre-delete only", kind, h.hook.Events)
		}
		if want := []release.HookDeletePolicy{release.HookBeforeHookCreation, release.HookSucceeded}; !slices.Equal(h.hook.DeletePolicies, want) {
			t.Errorf("hook %s delete policies %v, want %v", kind, h.hook.DeletePolicies, want)
		}
		weights[kind] = h.hook.Weight
	}
	if want := map[string]int{"ServiceAccount": -10, "ClusterRole": -10, "ClusterRoleBinding": -10, "Job": 0}; !cmp.Equal(weights, want) {
		t.Errorf("hook weights %v, want %v (RBAC before the Job)", weights, want)
	}
	role := decode[rbacv1.ClusterRole](t, hookObject(t, r, "ClusterRole"))
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, ResourceNames: []string{validating}, Verbs: []string{"delete"}},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{mutating}, Verbs: []string{"delete"}},
	}
	if !apiequality.Semantic.DeepEqual(role.Rules, want) {
		t.Errorf("uninstall ClusterRole:\n%s", cmp.Diff(want, role.Rules))
	}
	binding := decode[rbacv1.ClusterRoleBinding](t, hookObject(t, r, "ClusterRoleBinding"))
	subject := rbacv1.Subject{Kind: "ServiceAccount", Name: name, Namespace: r.namespace}
	if binding.RoleRef.Name != name || !slices.Equal(binding.Subjects, []rbacv1.Subject{subject}) {
		t.Errorf("uninstall binding %+v %+v", binding.RoleRef, binding.Subjects)
	}
	job := decode[batchv1.Job](t, hookObject(t, r, "Job"))
	spec := job.Spec.Template.Spec
	if spec.ServiceAccountName != name {
		t.Errorf("uninstall Job runs as %q, want %q", spec.ServiceAccountName, name)
	}
	checkRestricted(t, "uninstall Job", spec)
	c := spec.Containers[0]
	if c.Image != deployment(t, r).Spec.Template.Spec.Containers[0].Image {
		t.Errorf("uninstall Job image %q is not the webhook's", c.Image)
	}
	args := containerArgs(t, c)
	if c.Args[0] != "uninstall" || args["--validating-webhook-configuration"] != validating || args["--mutating-webhook-configuration"] != mutating || len(args) != 3 {
		t.Errorf("uninstall Job args %v, want uninstall and both configuration names", c.Args)
	}
	// The Job's Pod must never receive the webhook's traffic or count as a replica.
	sel, err := metav1.LabelSelectorAsSelector(deployment(t, r).Spec.Selector)
	if err != nil || sel.Matches(labels.Set(job.Spec.Template.Labels)) {
		t.Errorf("the Deployment's selector matches the uninstall Pod's labels %v", job.Spec.Template.Labels)
	}
}

// TestUninstallDeletesWebhookConfigurationsFirst: Helm deletes a release's
// objects in releaseutil.UninstallOrder, which does not know webhook
// configurations, so it would delete them after the Service and the
// Deployment; the pre-delete hook is there to delete them before. If Helm
// ever orders them first, the hook can go.
func TestUninstallDeletesWebhookConfigurationsFirst(t *testing.T) {
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		if slices.Contains(releaseutil.UninstallOrder, kind) {
			t.Errorf("Helm's UninstallOrder now lists %s: check whether the uninstall hook is still needed", kind)
		}
	}
	r := render(t, "signet", "signet-system", "")
	_, sorted, err := releaseutil.SortManifests(releaseutil.SplitManifests(r.release.Manifest), nil, releaseutil.UninstallOrder)
	if err != nil {
		t.Fatal(err)
	}
	position := map[string]int{}
	for i, m := range sorted {
		position[m.Head.Kind] = i
	}
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		for _, before := range []string{"Service", "Deployment"} {
			if position[kind] < position[before] {
				t.Errorf("Helm deletes %s before the %s: the reasoning for the hook changed", kind, before)
			}
		}
	}
	var preDelete []string
	for _, h := range r.hooks {
		if slices.Contains(h.hook.Events, release.HookPreDelete) {
			preDelete = append(preDelete, h.obj.GetKind())
		}
	}
	if !slices.Contains(preDelete, "Job") {
		t.Errorf("no pre-delete Job among the hooks %v", preDelete)
	}
}
