package depcheck

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/signet-dev/signet"

// rule forbids packages matching pkg from depending on any import prefix in
// forbidden. transitive checks the whole dependency closure, not just
// direct imports.
type rule struct {
	pkg        string
	transitive bool
	forbidden  []string
	why        string
}

var rules = []rule{
	{
		pkg: module + "/pkg/policy/api/v1alpha1", transitive: true,
		forbidden: []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go", "github.com/aws/", module + "/"},
		why:       "the CRD types are a leaf: apimachinery only",
	},
	{
		pkg: module + "/pkg/policy", transitive: true,
		forbidden: []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go", "github.com/aws/", module + "/pkg/admission", module + "/internal/awsclient"},
		why:       "the policy domain runs without a cluster or AWS",
	},
	{
		pkg: module + "/pkg/policy", transitive: true,
		forbidden: []string{"github.com/prometheus/"},
		why:       "the engine reports through policy.Observer; pkg/admission/metrics owns Prometheus",
	},
	{
		pkg: module + "/pkg/policy/verify/", transitive: false,
		forbidden: []string{"sigs.k8s.io/controller-runtime", module + "/pkg/admission", module + "/pkg/policy/store"},
		why:       "verifiers know signatures, not Kubernetes requests",
	},
	{
		pkg: module + "/pkg/admission", transitive: false,
		forbidden: []string{"github.com/aws/", module + "/internal/awsclient"},
		why:       "admission never talks to AWS directly; verifiers do",
	},
	{
		pkg: module + "/pkg/workload", transitive: true,
		forbidden: []string{module + "/pkg/admission", module + "/pkg/audit", "sigs.k8s.io/controller-runtime"},
		why:       "what a Pod pulls sits below admission and continuous validation, which both judge it",
	},
	{
		pkg: module + "/pkg/audit", transitive: true,
		forbidden: []string{module + "/pkg/admission"},
		why:       "continuous validation shares the engine and image extraction with admission, never admission's code",
	},
	{
		pkg: module + "/pkg/admission", transitive: true,
		forbidden: []string{module + "/pkg/audit"},
		why:       "admission and continuous validation are siblings",
	},
	{
		pkg: module + "/internal/", transitive: false,
		forbidden: []string{module + "/pkg/admission", module + "/cmd/"},
		why:       "shared plumbing sits below the packages that use it",
	},
	{
		pkg: module + "/internal/", transitive: false,
		forbidden: []string{"github.com/prometheus/", "sigs.k8s.io/controller-runtime"},
		why:       "the registry and AWS layers report through plain hooks (oci.Options.Observe, awsclient.WithObserver)",
	},
	{
		pkg: module + "/pkg/policy/verify/", transitive: false,
		forbidden: []string{"github.com/prometheus/"},
		why:       "verifiers keep plain counters; pkg/admission/metrics exports them",
	},
}

type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestDependenciesFlowOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if !matches(r.pkg, p.ImportPath) {
				continue
			}
			checked++
			deps := p.Imports
			if r.transitive {
				deps = p.Deps
			}
			for _, d := range deps {
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, f) && d != p.ImportPath {
						t.Errorf("%s imports %s: %s", p.ImportPath, d, r.why)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule: the rules are stale")
	}
}

// matches: a rule ending in "/" covers the packages below it; otherwise
// exactly that package.
func matches(rule, pkg string) bool {
	if strings.HasSuffix(rule, "/") {
		return strings.HasPrefix(pkg, rule)
	}
	return pkg == rule
}
