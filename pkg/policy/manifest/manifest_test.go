package manifest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

func TestSamplesDecodeWithDefaults(t *testing.T) {
	s, err := NewSchema()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../../../config/samples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no samples")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := s.DecodeBytes(context.Background(), f, b)
		if err != nil || len(ps) != 1 {
			t.Fatalf("%s: %v (%d policies)", f, err, len(ps))
		}
		if ps[0].Spec.Mode == "" {
			t.Errorf("%s: mode not defaulted", f)
		}
		for _, a := range ps[0].Spec.Authorities {
			if a.Signer != nil && a.Signer.Revocation == "" {
				t.Errorf("%s: revocation not defaulted", f)
			}
		}
	}
}

// The messages are the API server's own (see the CRD test, which checks
// the same shapes against a real kube-apiserver).
func TestInvalidPoliciesGetTheAPIServersMessages(t *testing.T) {
	s, err := NewSchema()
	if err != nil {
		t.Fatal(err)
	}
	const head = "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"reg.example.com/**\"}]\n"
	tests := map[string]struct{ doc, want string }{
		"bad kms": {head + "  authorities: [{name: a, key: {kms: alias/cosign}}]\n",
			`policy.yaml: ClusterImagePolicy "p" is invalid: spec.authorities[0].key.kms: Invalid value: "alias/cosign": kms must be an AWS KMS key URI: awskms:///KEY_ID, awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`},
		"key and signer": {head + "  authorities: [{name: a, key: {kms: awskms:///alias/x}, signer: {profiles: [\"arn:aws:signer:us-east-1:123456789012:/signing-profiles/P1\"]}}]\n",
			`policy.yaml: ClusterImagePolicy "p" is invalid: spec.authorities[0]: Invalid value: set exactly one of key (a cosign key: kms, data or secretRef), signer (AWS Signer signing profiles) or static (pass or fail without a signature)`},
		"static fail without message": {head + "  authorities: [{name: a, static: {action: fail}}]\n",
			`policy.yaml: ClusterImagePolicy "p" is invalid: spec.authorities[0].static: Invalid value: a static fail authority needs a message telling users what to do instead (e.g. where to get images); pass takes no message`},
		"signer with attestations": {head + "  authorities: [{name: a, signer: {profiles: [\"arn:aws:signer:us-east-1:123456789012:/signing-profiles/P1\"], attestations: [{name: scan, predicateType: vuln}]}}]\n",
			`policy.yaml: ClusterImagePolicy "p" is invalid: spec.authorities[0].signer.attestations: Invalid value: a signer authority cannot require attestations: Signet checks in-toto attestations made with cosign attest and a cosign key; list them under key.attestations of a key authority that trusts the key your pipeline attests with`},
		"bad mode": {head + "  mode: Audit\n  authorities: [{name: a, key: {kms: awskms:///alias/x}}]\n",
			`policy.yaml: ClusterImagePolicy "p" is invalid: spec.mode: Unsupported value: "Audit": supported values: "Enforce", "Warn"`},
		"unknown field": {head + "  authorities: [{name: a, key: {kms: awskms:///alias/x}}]\n  mdoe: Warn\n",
			`policy.yaml: ClusterImagePolicy "p" is invalid: strict decoding error: unknown field "spec.mdoe"`},
		"other kind": {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			`policy.yaml: document 1 is v1 ConfigMap, want a signet.dev/v1alpha1 ClusterImagePolicy`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := s.Decode(context.Background(), "policy.yaml", strings.NewReader(tt.doc))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestMultipleDocuments(t *testing.T) {
	s, _ := NewSchema()
	doc := `apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: one}
spec:
  images: [{glob: "a.example.com/**"}]
  authorities: [{name: a, key: {kms: "awskms:///alias/a"}}]
---
---
apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata: {name: two}
spec:
  mode: Warn
  images: [{glob: "b.example.com/**"}]
  authorities: [{name: b, signer: {profiles: ["arn:aws:signer:us-east-1:123456789012:/signing-profiles/P1"]}}]
`
	ps, err := s.Decode(context.Background(), "-", strings.NewReader(doc))
	if err != nil || len(ps) != 2 || ps[1].Spec.Mode != v1alpha1.ModeWarn || ps[1].Spec.Authorities[0].Signer.Revocation != v1alpha1.RevocationEnforce {
		t.Fatalf("got %d policies, %v", len(ps), err)
	}
}

// The API server compiles a CRD's rules only when a field they guard is set, so
// a rule that does not compile shows up first on a user's policy (or in the
// demo). Compile every rule here, as the API server would, so it fails the build.
func TestEveryCRDRuleCompiles(t *testing.T) {
	s, err := NewSchema()
	if err != nil {
		t.Fatal(err)
	}
	rules := 0
	var walk func(path string, node *structuralschema.Structural, root bool)
	walk = func(path string, node *structuralschema.Structural, root bool) {
		if node == nil {
			return
		}
		if len(node.XValidations) > 0 {
			results, err := cel.Compile(node, model.SchemaDeclType(node, root), celconfig.PerCallLimit,
				environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()), cel.StoredExpressionsEnvLoader())
			if err != nil {
				t.Errorf("%s: %v", path, err)
			}
			for i, r := range results {
				rules++
				if r.Error != nil {
					t.Errorf("%s: rule %q: %v", path, node.XValidations[i].Rule, r.Error)
				}
			}
		}
		for name, p := range node.Properties {
			walk(path+"."+name, &p, false)
		}
		walk(path+"[*]", node.Items, false)
		if node.AdditionalProperties != nil {
			walk(path+"{*}", node.AdditionalProperties.Structural, false)
		}
	}
	walk("", s.structural, true)
	if rules < 10 {
		t.Fatalf("compiled %d rules; the walk missed the schema", rules)
	}
}

// TestDeferredCELRules: DecodeDeferred returns a policy its CEL rules
// refuse (the schema and defaults passed) and Check refuses it with
// Decode's exact error; a later document's immediate error comes after an
// earlier document's CEL error, in reading order, as Decode reports.
func TestDeferredCELRules(t *testing.T) {
	s, err := NewSchema()
	if err != nil {
		t.Fatal(err)
	}
	const head = "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: p}\nspec:\n  images: [{glob: \"reg.example.com/**\"}]\n"
	celBad := head + "  authorities: [{name: a, key: {kms: alias/cosign}}]\n"
	const want = `policy.yaml: ClusterImagePolicy "p" is invalid: spec.authorities[0].key.kms: Invalid value: "alias/cosign": kms must be an AWS KMS key URI: awskms:///KEY_ID, awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`
	ctx := context.Background()

	pending := &Pending{}
	ps, err := s.DecodeDeferred(ctx, "policy.yaml", strings.NewReader(celBad), pending)
	if err != nil || len(ps) != 1 || ps[0].Spec.Mode != v1alpha1.ModeEnforce {
		t.Fatalf("DecodeDeferred = %d policies, %v; want the defaulted policy, its CEL rules not yet applied", len(ps), err)
	}
	if err := pending.Check(ctx); err == nil || err.Error() != want {
		t.Fatalf("Check = %v\nwant %s", err, want)
	}

	// An earlier file's CEL error is reported before a later file's schema error.
	pending = &Pending{}
	if _, err := s.DecodeDeferred(ctx, "policy.yaml", strings.NewReader(celBad), pending); err != nil {
		t.Fatal(err)
	}
	_, err = s.DecodeDeferred(ctx, "later.yaml", strings.NewReader(head+"  mode: Audit\n  authorities: [{name: a, key: {kms: awskms:///alias/x}}]\n"), pending)
	if err == nil || err.Error() != want {
		t.Fatalf("DecodeDeferred of a later bad file = %v\nwant the earlier policy's %s", err, want)
	}

	// A valid policy passes Check.
	pending = &Pending{}
	if _, err := s.DecodeDeferred(ctx, "ok.yaml", strings.NewReader(head+"  authorities: [{name: a, key: {kms: awskms:///alias/x}}]\n"), pending); err != nil {
		t.Fatal(err)
	}
	if err := pending.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
