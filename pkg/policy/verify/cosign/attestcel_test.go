package cosign

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/fixtures"
)

// Signet maps cosign's short predicate types exactly as `cosign attest
// --type` does.
func TestPredicateTypesAreCosigns(t *testing.T) {
	if len(predicateTypes) != len(options.PredicateTypeMap) {
		t.Fatalf("Signet knows %d short names, cosign %d: %v", len(predicateTypes), len(options.PredicateTypeMap), options.PredicateTypeMap)
	}
	for short, uri := range options.PredicateTypeMap {
		got, err := PredicateTypeURI(short)
		if err != nil || got != uri {
			t.Errorf("PredicateTypeURI(%q) = %q, %v; cosign maps it to %q", short, got, err, uri)
		}
		want, _ := options.ParsePredicateType(short)
		if got != want {
			t.Errorf("%q: %q, cosign's ParsePredicateType %q", short, got, want)
		}
	}
	if got, err := PredicateTypeURI("https://example.com/predicate/v1"); err != nil || got != "https://example.com/predicate/v1" {
		t.Errorf("a URI: %q, %v", got, err)
	}
	if _, err := PredicateTypeURI("sbom"); err == nil || err.Error() != `"sbom" is neither one of cosign's predicate types (custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex) nor a URI` {
		t.Errorf("sbom: %v", err)
	}
}

func TestCompileCondition(t *testing.T) {
	for _, tc := range []struct {
		expr, err string
	}{
		{fixtures.NoCriticalCondition, ""},
		{fixtures.BuilderCondition, ""},
		{`statement.predicateType == 'https://slsa.dev/provenance/v1' && statement.subject.size() == 1`, ""},
		{`predicate.metadata.scanFinishedOn.matches('^2026-')`, ""},
		{`predicate.a + 1`, "must evaluate to a bool, not int"},
		{`pred.a == 1`, "ERROR: <input>:1:1: undeclared reference to 'pred' (in container '')\n | pred.a == 1\n | ^"},
		// A cross product of the predicate's lists: 524288² iterations
		// over a 1 MiB statement.
		{`predicate.a.all(x, predicate.a.all(y, x == y))`, "estimated cost 1649270063106 exceeds Kubernetes' per-expression limit 10000000 (worst case over a 1048576-byte statement): avoid nesting loops over lists of the predicate that are not each other's elements"},
	} {
		_, err := compileCondition(tc.expr, 1<<20)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("compileCondition(%s)\n = %q\nwant %q", tc.expr, got, tc.err)
		}
	}
}

func TestConditionRuntime(t *testing.T) {
	c, err := compileCondition(`predicate.n.all(x, x.matches('^a+$'))`, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// The per-call limit stops a condition over a predicate that is
	// larger than its estimate assumed (which sizes each element of a
	// list it loops over at 1). Few long strings reach the limit in few
	// iterations: cel-go's runtime cost tracker grows a stack per
	// iteration, so a loop of hundreds of thousands of cheap steps would
	// take a minute to reach it.
	long := strings.Repeat("a", 100000)
	huge := make([]any, 1000)
	for i := range huge {
		huge[i] = long
	}
	if _, err := c.eval(context.Background(), map[string]any{"n": huge}, nil); err == nil || err.Error() != "operation cancelled: actual cost limit exceeded" {
		t.Fatalf("eval = %v", err)
	}
	if ok, err := c.eval(context.Background(), map[string]any{"n": []any{"a", "aa"}}, nil); !ok || err != nil {
		t.Fatalf("eval = %v, %v", ok, err)
	}
}

// The sample's conditions compile, and are the ones the tests attest
// against (so the tests show the sample doing what its comment says).
func TestSampleConditions(t *testing.T) {
	b, err := os.ReadFile("../../../../config/samples/attestations.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cip v1alpha1.ClusterImagePolicy
	if err := yaml.UnmarshalStrict(b, &cip); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range cip.Spec.Authorities[0].Key.Attestations {
		if _, err := compileCondition(a.Condition, 1<<20); err != nil {
			t.Errorf("%s: %v", a.Name, err)
		}
		got = append(got, a.Condition)
	}
	if want := []string{fixtures.NoCriticalCondition, fixtures.BuilderCondition}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sample conditions %q\nwant %q", got, want)
	}
}
