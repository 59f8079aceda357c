package charts

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yamlv3 "gopkg.in/yaml.v3"
)

// TestValuesAreRefused: values.schema.json rejects wrong types and values
// with Helm's own message, before anything is rendered; the template refuses
// a grace period too short for a clean shutdown.
func TestValuesAreRefused(t *testing.T) {
	const header = "values don't meet the specifications of the schema(s) in the following chart(s):\nsignet:\n"
	for _, tc := range []struct {
		name, values, want string
	}{
		{"replicas as a word", "replicaCount: two", header + "- at '/replicaCount': got string, want integer\n"},
		{"unknown no-match policy", "noMatchPolicy: maybe", header + "- at '/noMatchPolicy': value must be one of 'allow', 'warn', 'deny'\n"},
		{"timeout beyond the API server's", "webhook: {timeoutSeconds: 31}", header + "- at '/webhook/timeoutSeconds': maximum: got 31, want 30\n"},
		{"pinning as a string", `digestPinning: "yes"`, header + "- at '/digestPinning': got string, want boolean\n"},
		{"failure policy", "webhook: {failurePolicy: Open}", header + "- at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'\n"},
		{"TTL that is not a duration", "cache: {verifiedTTL: 10 minutes}", header + "- at '/cache/verifiedTTL': '10 minutes' does not match pattern '^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'\n"},
		{"misspelt key", "replicaCont: 3", header + "- at '': additional properties 'replicaCont' not allowed\n"},
		{"exempt namespaces as a string", "exemptNamespaces: kube-system", header + "- at '/exemptNamespaces': got string, want array\n"},
		{"role ARN that is not one", `serviceAccount: {roleArn: "signet-role"}`, header + "- at '/serviceAccount/roleArn': 'signet-role' does not match pattern '^(arn:aws[a-z-]*:iam::[0-9]{12}:role/.+)?$'\n"},
		{
			"grace period within shutdown delay and timeout", "terminationGracePeriodSeconds: 25",
			"terminationGracePeriodSeconds (25) must exceed shutdownDelaySeconds (15) + webhook.timeoutSeconds (10): a stopping replica must finish the admissions it still receives",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tryRender("signet", "signet-system", tc.values)
			if err == nil {
				t.Fatalf("values %q were accepted", tc.values)
			}
			if strings.HasPrefix(tc.want, header) {
				if err.Error() != tc.want {
					t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
				}
			} else if !strings.HasSuffix(err.Error(), tc.want) {
				t.Errorf("error %q, want it to end with %q", err, tc.want)
			}
		})
	}
	// The CLI prints the same words.
	t.Run("helm CLI", func(t *testing.T) {
		out, err := helm(t, "template", "signet", chartDir, "--set", "replicaCount=two")
		want := "Error: " + header + "- at '/replicaCount': got string, want integer\n"
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("helm template --set replicaCount=two: %v\n%s\nwant:\n%s", err, out, want)
		}
	})
}

// helm runs the pinned helm CLI with its state in a scratch folder.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := filepath.Abs("../bin/helm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm is not built: run `make tools` (%v)", err)
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data", "KUBECONFIG="+home+"/no-kubeconfig")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// TestHelmLint: `helm lint --strict` passes with the defaults and with every
// optional object on.
func TestHelmLint(t *testing.T) {
	for _, args := range [][]string{
		{"lint", chartDir},
		{"lint", "--strict", chartDir},
		{"lint", "--strict", chartDir, "--set", "certManager.enabled=true,serviceMonitor.enabled=true,networkPolicy.enabled=true,digestPinning=false,hostNetwork=true"},
	} {
		out, err := helm(t, args...)
		if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
			t.Errorf("helm %s reports problems:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestChartCRDIsCurrent: the chart's copy of the CRD is the generated one
// (`make generate` copies it).
func TestChartCRDIsCurrent(t *testing.T) {
	generated, err := filepath.Glob("../config/crd/bases/*.yaml")
	if err != nil || len(generated) == 0 {
		t.Fatalf("no generated CRDs (%v)", err)
	}
	copies, err := filepath.Glob(chartDir + "/files/crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(base(generated), base(copies)) {
		t.Fatalf("the chart holds CRDs %v, config/crd/bases %v: run make generate", base(copies), base(generated))
	}
	for _, p := range generated {
		want, _ := os.ReadFile(p)
		got, _ := os.ReadFile(filepath.Join(chartDir, "files/crds", filepath.Base(p)))
		if !bytes.Equal(got, want) {
			t.Errorf("charts/signet/files/crds/%s differs from %s: run make generate", filepath.Base(p), p)
		}
	}
}

// openReportsCRD is the Report CRD as the Go module ships it.
func openReportsCRD(t *testing.T) string {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("go list the OpenReports module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "openreports.io_reports.yaml")
}

// TestChartOpenReportsCRDIsCurrent: the chart's copy of the OpenReports
// Report CRD is the one of the module version go.mod requires.
func TestChartOpenReportsCRDIsCurrent(t *testing.T) {
	src := openReportsCRD(t)
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartDir + "/files/openreports/openreports.io_reports.yaml")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("charts/signet/files/openreports/openreports.io_reports.yaml differs from %s (%v): run make generate", src, err)
	}
}

// TestValuesAreDocumented: every key of values.yaml has a comment and a type
// in values.schema.json, and the schema declares no key values.yaml lacks.
// Free-form objects (resources, affinity...) are documented as a whole.
func TestValuesAreDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	rawSchema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(rawSchema, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	checkDocumented(t, "", doc.Content[0], schema)
}

func checkDocumented(t *testing.T, path string, node *yamlv3.Node, schema map[string]any) {
	props, _ := schema["properties"].(map[string]any)
	if add, ok := schema["additionalProperties"].(bool); !ok || add {
		t.Errorf("values.schema.json: %q allows keys it does not declare, so a misspelt key would pass", path)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		p := strings.TrimPrefix(path+"."+key.Value, ".")
		seen[key.Value] = true
		if strings.TrimSpace(key.HeadComment) == "" {
			t.Errorf("values.yaml:%d: %s has no comment", key.Line, p)
		}
		sub, ok := props[key.Value].(map[string]any)
		if !ok {
			t.Errorf("values.yaml:%d: %s is not declared in values.schema.json", key.Line, p)
			continue
		}
		if _, ok := sub["type"]; !ok {
			t.Errorf("values.schema.json: %s has no type", p)
		}
		// An empty map ({}) is an optional object, documented as a whole.
		if _, chartDefined := sub["properties"]; chartDefined && !(val.Kind == yamlv3.MappingNode && len(val.Content) == 0) {
			if val.Kind != yamlv3.MappingNode {
				t.Errorf("values.yaml:%d: %s is not a map", key.Line, p)
				continue
			}
			checkDocumented(t, p, val, sub)
		}
	}
	for k := range props {
		if !seen[k] && !(path == "" && k == "global") {
			t.Errorf("values.schema.json declares %s, values.yaml gives it no documented default", strings.TrimPrefix(path+"."+k, "."))
		}
	}
}
