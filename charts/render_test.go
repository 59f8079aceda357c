// Package charts tests the Helm chart in charts/signet: it renders the chart
// with Helm's own install code for a matrix of values and asserts what the
// objects do, lints it with the pinned helm CLI, and applies it to the local
// stack's API server.
package charts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart under test, relative to this package.
const chartDir = "signet"

// rendered is one `helm install --dry-run` of the chart: the release's
// objects, its hooks (with Helm's reading of their annotations), and the
// values the templates saw (defaults coalesced with the test's).
type rendered struct {
	release   *release.Release
	namespace string
	objects   []*unstructured.Unstructured
	hooks     []renderedHook
	values    chartutil.Values
}

type renderedHook struct {
	hook *release.Hook
	obj  *unstructured.Unstructured
}

// render installs the chart client-side, exactly as `helm install --dry-run`
// or `helm template` would, with valuesYAML as a -f file, and fails the test
// when Helm refuses.
func render(t testing.TB, releaseName, namespace, valuesYAML string) *rendered {
	t.Helper()
	r, err := tryRender(releaseName, namespace, valuesYAML)
	if err != nil {
		t.Fatalf("rendering the chart with values\n%s\nfailed: %v", valuesYAML, err)
	}
	return r
}

func tryRender(releaseName, namespace, valuesYAML string) (*rendered, error) {
	// Loaded for every render: Helm's install may change the chart it is
	// given (dependencies, values), and tests must not share that.
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		return nil, fmt.Errorf("test values: %w", err)
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = releaseName, namespace
	// The local stack's version, so Capabilities match where the test applies it.
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.37.1", Major: "1", Minor: "37"}
	rel, err := inst.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	r := &rendered{release: rel, namespace: namespace}
	if r.values, err = chartutil.CoalesceValues(rel.Chart, rel.Config); err != nil {
		return nil, err
	}
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		obj, err := parseObject(manifests[k])
		if err != nil {
			return nil, err
		}
		if obj != nil {
			r.objects = append(r.objects, obj)
		}
	}
	for _, h := range rel.Hooks {
		obj, err := parseObject(h.Manifest)
		if err != nil {
			return nil, err
		}
		r.hooks = append(r.hooks, renderedHook{hook: h, obj: obj})
	}
	return r, nil
}

func parseObject(doc string) (*unstructured.Unstructured, error) {
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		return nil, fmt.Errorf("rendered YAML does not parse: %w\n%s", err, doc)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// find returns the release object (not hook) of kind and name, or nil.
func (r *rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// mustFind is find that fails the test when the object is missing.
func (r *rendered) mustFind(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := r.find(kind, name)
	if o == nil {
		t.Fatalf("the chart renders no %s %q; it renders %v", kind, name, r.names())
	}
	return o
}

// ofKind returns the release objects (not hooks) of kind.
func (r *rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r *rendered) names() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(out)
	return out
}

// val reads a coalesced value by dotted path ("webhook.timeoutSeconds").
func (r *rendered) val(t testing.TB, path string) any {
	t.Helper()
	cur := any(map[string]any(r.values))
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("value %s: %q is not under a map", path, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("value %s is not set (no default in values.yaml?)", path)
		}
	}
	return cur
}

func (r *rendered) str(t testing.TB, path string) string {
	t.Helper()
	s, ok := r.val(t, path).(string)
	if !ok {
		t.Fatalf("value %s = %#v, not a string", path, r.val(t, path))
	}
	return s
}

func (r *rendered) boolean(t testing.TB, path string) bool {
	t.Helper()
	b, ok := r.val(t, path).(bool)
	if !ok {
		t.Fatalf("value %s = %#v, not a bool", path, r.val(t, path))
	}
	return b
}

func (r *rendered) integer(t testing.TB, path string) int64 {
	t.Helper()
	switch n := r.val(t, path).(type) {
	case float64:
		return int64(n)
	case int:
		return int64(n)
	case int64:
		return n
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("value %s: %v", path, err)
		}
		return i
	default:
		t.Fatalf("value %s = %#v, not a number", path, n)
		return 0
	}
}

func (r *rendered) strings(t testing.TB, path string) []string {
	t.Helper()
	list, ok := r.val(t, path).([]any)
	if !ok {
		t.Fatalf("value %s = %#v, not a list", path, r.val(t, path))
	}
	var out []string
	for _, v := range list {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// fullname is the name prefix the chart gives its objects.
func (r *rendered) fullname(t testing.TB) string {
	t.Helper()
	if o := r.str(t, "fullnameOverride"); o != "" {
		return o
	}
	name := r.release.Chart.Name()
	if o := r.str(t, "nameOverride"); o != "" {
		name = o
	}
	if strings.Contains(r.release.Name, name) {
		return r.release.Name
	}
	return r.release.Name + "-" + name
}

// decode converts a rendered object into its Go type, refusing fields the
// type does not have, so a misspelt or misplaced key fails the test instead
// of being dropped by the API server.
func decode[T any](t testing.TB, obj *unstructured.Unstructured) *T {
	t.Helper()
	out, err := decodeJSON[T](obj.Object)
	if err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return out
}

// decodeJSON converts parsed YAML into T, refusing unknown fields.
func decodeJSON[T any](v any) (*T, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	out := new(T)
	if err := dec.Decode(out); err != nil {
		return nil, err
	}
	return out, nil
}

// readObjects reads the objects of a multi-document YAML file of the
// repository (relative to this package).
func readObjects(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range releaseutil.SplitManifests(string(raw)) {
		obj, err := parseObject(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if obj != nil {
			out = append(out, obj)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetKind()+out[i].GetName() < out[j].GetKind()+out[j].GetName() })
	return out
}
