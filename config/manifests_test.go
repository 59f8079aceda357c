package config_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/pkg/admission"
	"github.com/signet-dev/signet/test/stack"
)

// Folders of the manifests under test, relative to this package.
var manifestDirs = []string{"rbac", "webhook"}

// excludedNamespaces are never sent to Signet: the system namespaces and
// Signet's own (signet-system in config/; the chart's release namespace).
var excludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease", "signet-system"}

// TestGeneratedManifestsAreCurrent runs `make generate`'s RBAC command into
// a scratch folder and compares with what is committed (the webhook
// configurations are hack/webhookgen's; its own test checks them).
func TestGeneratedManifestsAreCurrent(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(root, "bin/controller-gen")
	if _, err := os.Stat(gen); err != nil {
		t.Fatalf("controller-gen is not built: run `make tools` (%v)", err)
	}
	out := t.TempDir()
	cmd := exec.Command(gen, "rbac:roleName=signet-webhook", "paths=./pkg/...",
		"output:rbac:artifacts:config="+filepath.Join(out, "rbac"))
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	for _, f := range []string{"rbac/role.yaml"} {
		generated, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(generated, committed) {
			t.Errorf("config/%s is not what controller-gen generates from the markers: run make generate", f)
		}
	}
}

// TestKustomizationsListEveryManifest: `kubectl apply -k config/rbac` (and
// webhook) installs exactly the files this test applies.
func TestKustomizationsListEveryManifest(t *testing.T) {
	for _, dir := range manifestDirs {
		raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.UnmarshalStrict(raw, &k); err != nil {
			t.Fatalf("%s/kustomization.yaml: %v", dir, err)
		}
		files := manifestFiles(t, dir)
		sort.Strings(k.Resources)
		if !slices.Equal(k.Resources, files) {
			t.Errorf("%s/kustomization.yaml lists %v; the folder holds %v", dir, k.Resources, files)
		}
	}
}

// podBearing are the resources whose images Signet judges.
func podBearing() []string {
	var out []string
	for _, k := range admission.Kinds {
		out = append(out, k.Resource)
	}
	return out
}

// hook is what this test checks of a validating or mutating webhook.
type hook struct {
	name        string
	client      admissionregistrationv1.WebhookClientConfig
	rules       []admissionregistrationv1.RuleWithOperations
	failure     *admissionregistrationv1.FailurePolicyType
	sideEffects *admissionregistrationv1.SideEffectClass
	timeout     *int32
	reviews     []string
	namespaces  *metav1.LabelSelector
	conditions  []admissionregistrationv1.MatchCondition
}

// TestWebhooksServeEveryAdmissionPath: each webhook is configured as issue 6
// asks, and every path pkg/admission serves (every Path* constant) is
// called by exactly one webhook; a new handler without a marker fails here.
func TestWebhooksServeEveryAdmissionPath(t *testing.T) {
	validating, mutating := webhookConfigurations(t)
	var hooks []hook
	for _, w := range validating.Webhooks {
		hooks = append(hooks, hook{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds,
			w.AdmissionReviewVersions, w.NamespaceSelector, w.MatchConditions})
	}
	if mutating != nil {
		for _, w := range mutating.Webhooks {
			hooks = append(hooks, hook{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds,
				w.AdmissionReviewVersions, w.NamespaceSelector, w.MatchConditions})
		}
	}
	served := map[string]string{} // path -> webhook name
	for _, h := range hooks {
		if h.client.Service == nil || h.client.Service.Path == nil {
			t.Errorf("%s: no service path", h.name)
			continue
		}
		if prev, dup := served[*h.client.Service.Path]; dup {
			t.Errorf("%s and %s both call %s", prev, h.name, *h.client.Service.Path)
		}
		served[*h.client.Service.Path] = h.name
		if h.failure == nil || *h.failure != admissionregistrationv1.Fail {
			t.Errorf("%s: failurePolicy %v, want Fail", h.name, h.failure)
		}
		if h.sideEffects == nil || *h.sideEffects != admissionregistrationv1.SideEffectClassNone {
			t.Errorf("%s: sideEffects %v, want None (dry-run requests are judged too)", h.name, h.sideEffects)
		}
		if !slices.Equal(h.reviews, []string{"v1"}) {
			t.Errorf("%s: admissionReviewVersions %v, want [v1]", h.name, h.reviews)
		}
		judgesImages := false
		for _, r := range h.rules {
			for _, res := range r.Resources {
				judgesImages = judgesImages || slices.Contains(podBearing(), strings.Split(res, "/")[0])
			}
		}
		if !judgesImages {
			continue
		}
		// Webhooks on Pods and workloads: the budget --verify-timeout is
		// derived from, the exempt namespaces, and no call for UPDATEs
		// that leave the images alone.
		if h.timeout == nil || *h.timeout != 10 {
			t.Errorf("%s: timeoutSeconds %v, want 10 (--webhook-timeout's default)", h.name, h.timeout)
		}
		want := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: "NotIn", Values: excludedNamespaces}}}
		if h.namespaces == nil || !apiequality.Semantic.DeepEqual(h.namespaces, want) {
			t.Errorf("%s: namespaceSelector %+v, want %+v", h.name, h.namespaces, want)
		}
		if len(h.conditions) == 0 {
			t.Errorf("%s: no matchConditions: every irrelevant UPDATE would reach Signet", h.name)
		}
	}
	paths := admissionPaths(t)
	for name, path := range paths {
		if _, ok := served[path]; !ok {
			t.Errorf("pkg/admission serves %s (%s) but no webhook in config/webhook calls it: run make generate", path, name)
		}
	}
	for path, name := range served {
		if !slices.Contains(mapValues(paths), path) {
			t.Errorf("webhook %s calls %s, which pkg/admission does not serve", name, path)
		}
	}
}

// TestManifestsAreAccepted applies every manifest server-side, as a dry
// run, to the stack's kube-apiserver: the API server validates each object,
// including compiling the matchConditions' CEL.
func TestManifestsAreAccepted(t *testing.T) {
	env := stack.Load(t)
	c, err := client.New(env.RESTConfig(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range manifestDirs {
		for _, f := range manifestFiles(t, dir) {
			for _, obj := range readObjects(t, filepath.Join(dir, f)) {
				t.Run(dir+"/"+f+"/"+obj.GetKind()+"/"+obj.GetName(), func(t *testing.T) {
					if obj.GetNamespace() != "" {
						// signet-system need not exist on the stack; a dry
						// run in it would fail for that reason alone.
						obj.SetNamespace("default")
					}
					err := c.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(obj),
						client.FieldOwner("signet-config-test"), client.ForceOwnership, client.DryRunAll)
					if err != nil {
						t.Fatalf("the API server rejects %s %s: %v", obj.GetKind(), obj.GetName(), err)
					}
				})
			}
		}
	}
}

// TestBrokenMatchConditionIsRejected proves the dry run above would catch
// CEL that does not compile: the API server compiles it on create.
func TestBrokenMatchConditionIsRejected(t *testing.T) {
	env := stack.Load(t)
	c, err := client.New(env.RESTConfig(t), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj := readObjects(t, "webhook/manifests.yaml")[0]
	webhooks, _, _ := unstructured.NestedSlice(obj.Object, "webhooks")
	w := webhooks[0].(map[string]any)
	w["matchConditions"] = []any{map[string]any{"name": "broken", "expression": "object.spec.containers.size() > 'one'"}}
	if err := unstructured.SetNestedSlice(obj.Object, webhooks, "webhooks"); err != nil {
		t.Fatal(err)
	}
	err = c.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("signet-config-test"), client.ForceOwnership, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "compilation failed") {
		t.Fatalf("apply with a CEL type error = %v, want a compilation failure", err)
	}
}

// manifestFiles are the YAML files of dir that are Kubernetes objects.
func manifestFiles(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range matches {
		if filepath.Base(m) != "kustomization.yaml" {
			out = append(out, filepath.Base(m))
		}
	}
	sort.Strings(out)
	return out
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no object", path)
	}
	return out
}

// webhookConfigurations reads config/webhook/manifests.yaml; mutating is
// nil until a mutating webhook has markers.
func webhookConfigurations(t *testing.T) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	var validating *admissionregistrationv1.ValidatingWebhookConfiguration
	var mutating *admissionregistrationv1.MutatingWebhookConfiguration
	for _, obj := range readObjects(t, "webhook/manifests.yaml") {
		raw, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var target any
		switch obj.GetKind() {
		case "ValidatingWebhookConfiguration":
			validating = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			target = validating
		case "MutatingWebhookConfiguration":
			mutating = &admissionregistrationv1.MutatingWebhookConfiguration{}
			target = mutating
		default:
			t.Fatalf("webhook/manifests.yaml: unexpected %s", obj.GetKind())
		}
		if err := yaml.UnmarshalStrict(raw, target); err != nil {
			t.Fatalf("webhook/manifests.yaml %s: %v", obj.GetKind(), err)
		}
	}
	if validating == nil {
		t.Fatal("webhook/manifests.yaml has no ValidatingWebhookConfiguration")
	}
	return validating, mutating
}

// admissionPaths are the paths pkg/admission serves its handlers on, by
// handler.
func admissionPaths(t *testing.T) map[string]string {
	t.Helper()
	paths := map[string]string{"ClusterImagePolicies": admission.PathClusterImagePolicies}
	for _, k := range admission.Kinds {
		paths["validate "+k.Resource] = k.ValidatePath()
		paths["pin "+k.Resource] = k.PinPath()
	}
	return paths
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
