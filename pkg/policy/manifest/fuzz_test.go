package manifest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// stubVerifier stands in for a signature scheme: the target is the file
// decoder and the compiler, not a verifier.
type stubVerifier struct{}

func (stubVerifier) Verify(context.Context, policy.Image) policy.Result { return policy.Result{} }
func (stubVerifier) Identity() string                                   { return "stub" }
func (stubVerifier) Describe() string                                   { return "stub" }

// FuzzDecodePolicyFile reads a policy file as `signet verify --policy`
// does, seeded with every sample in config/samples and multi-document and
// JSON forms of them. Properties: no panic; every policy decoded has a
// name, a defaulted mode and at least one image and authority (the
// schema's rules); encoding a decoded policy and decoding it again gives
// the same policy; and it compiles, or says why and fails closed (NotReady), without panicking.
func FuzzDecodePolicyFile(f *testing.F) {
	files, _ := filepath.Glob("../../../config/samples/*.yaml")
	if len(files) == 0 {
		f.Fatal("no samples in config/samples")
	}
	var all []string
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		all = append(all, string(b))
	}
	f.Add([]byte(strings.Join(all, "\n---\n")))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(`{"apiVersion":"signet.dev/v1alpha1","kind":"ClusterImagePolicy","metadata":{"name":"j"},"spec":{"images":[{"glob":"**"}],"authorities":[{"name":"k","key":{"kms":"awskms:///alias/x"}}]}}`))

	s, err := NewSchema()
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	factory := func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) { return stubVerifier{}, nil }
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := s.DecodeBytes(ctx, "policy.yaml", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "policy.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, p := range ps {
			if p.Name == "" || p.Spec.Mode == "" || len(p.Spec.Images) == 0 || len(p.Spec.Authorities) == 0 {
				t.Fatalf("decoded policy breaks the schema's rules: %+v", p)
			}
			again, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			back, err := s.DecodeBytes(ctx, "again.json", again)
			if err != nil || len(back) != 1 {
				t.Fatalf("re-decoding %s: %v", again, err)
			}
			if !reflect.DeepEqual(back[0].Spec, p.Spec) || back[0].Name != p.Name {
				t.Fatalf("round trip changed the policy:\n%+v\n%+v", p.Spec, back[0].Spec)
			}
			compiled, errs := policy.Compile(ctx, p, factory, nil)
			if compiled == nil || (len(errs) > 0) != (compiled.NotReady != nil) {
				t.Fatalf("Compile returned %+v and %v", compiled, errs)
			}
		}
	})
}
