package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/stack"
)

const crdPath = "../../../../config/crd/bases/signet.dev_clusterimagepolicies.yaml"

// installCRD applies the generated CRD to the stack's API server and waits
// until it serves the resource.
func installCRD(t *testing.T) client.Client {
	t.Helper()
	env := stack.Load(t)
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.RESTConfig(t), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	if err := c.Patch(ctx, crd, client.Apply, client.FieldOwner("signet-test"), client.ForceOwnership); err != nil {
		t.Fatalf("applying the CRD: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
			t.Fatal(err)
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				// Established can precede the typed client's discovery by a moment.
				if err := c.List(ctx, &v1alpha1.ClusterImagePolicyList{}); err == nil {
					return c
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the CRD did not become established in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	c := installCRD(t)
	files, err := filepath.Glob("../../../../config/samples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
			for {
				p := &v1alpha1.ClusterImagePolicy{}
				if err := dec.Decode(p); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				if err := c.Create(context.Background(), p, client.DryRunAll); err != nil {
					t.Fatalf("sample %s rejected: %v", p.Name, err)
				}
				// Defaults come from the CRD.
				if p.Spec.Mode == "" {
					t.Errorf("sample %s: mode not defaulted", p.Name)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := installCRD(t)
	p := policy(func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Authorities = append(s.Authorities, v1alpha1.Authority{Name: "signer", Signer: &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{profileARN}}})
	})
	if err := c.Create(context.Background(), p, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if p.Spec.Mode != v1alpha1.ModeEnforce || p.Spec.Authorities[1].Signer.Revocation != v1alpha1.RevocationEnforce {
		t.Fatalf("defaults: mode %q, revocation %q; want Enforce, Enforce", p.Spec.Mode, p.Spec.Authorities[1].Signer.Revocation)
	}
}

const profileARN = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/EcrSignerProfile"

// policy returns a valid policy with one KMS authority, changed by mutate.
func policy(mutate func(*v1alpha1.ClusterImagePolicySpec)) *v1alpha1.ClusterImagePolicy {
	p := &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "under-test"},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images:      []v1alpha1.ImageGlob{{Glob: "registry.example.com/**"}},
			Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/cosign"}}},
		},
	}
	if mutate != nil {
		mutate(&p.Spec)
	}
	return p
}

func TestValidAuthorityShapes(t *testing.T) {
	c := installCRD(t)
	for name, a := range map[string]v1alpha1.Authority{
		"key id":            {Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab"}},
		"key arn":           {Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}},
		"alias arn gov":     {Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/cosign"}},
		"endpoint form":     {Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms://kms.us-east-1.amazonaws.com/alias/cosign"}},
		"profile version":   {Name: "a", Signer: &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{profileARN + "/a1B2c3D4e5"}}},
		"china partition":   {Name: "a", Signer: &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{"arn:aws-cn:signer:cn-north-1:123456789012:/signing-profiles/Prof_1"}}},
		"secretRef":         {Name: "a", Key: &v1alpha1.KeyAuthority{SecretRef: &v1alpha1.SecretKeyReference{Name: "s", Namespace: "n", Key: "k"}}},
		"63-character name": {Name: strings.Repeat("a", 63), Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/x"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := policy(func(s *v1alpha1.ClusterImagePolicySpec) { s.Authorities = []v1alpha1.Authority{a} })
			if err := c.Create(context.Background(), p, client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

func TestInvalidShapesAreRejected(t *testing.T) {
	c := installCRD(t)
	const prefix = `ClusterImagePolicy.signet.dev "under-test" is invalid: `
	kms := &v1alpha1.KeyAuthority{KMS: "awskms:///alias/cosign"}
	signer := &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{profileARN}}
	withAuthority := func(a v1alpha1.Authority) func(*v1alpha1.ClusterImagePolicySpec) {
		return func(s *v1alpha1.ClusterImagePolicySpec) { s.Authorities = []v1alpha1.Authority{a} }
	}
	withProfile := func(arn string) func(*v1alpha1.ClusterImagePolicySpec) {
		return withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{v1alpha1.SigningProfileARN(arn)}}})
	}
	const oneOfKeySigner = `spec.authorities[0]: Invalid value: set exactly one of key (a cosign key: kms, data or secretRef) or signer (AWS Signer signing profiles)`
	const oneOfKey = `spec.authorities[0].key: Invalid value: set exactly one of kms (an awskms:// key URI), data (a PEM public key) or secretRef (a Secret holding one)`
	badKMS := func(v string) string {
		return `spec.authorities[0].key.kms: Invalid value: "` + v + `": kms must be an AWS KMS key URI: awskms:///KEY_ID, awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`
	}
	badARN := func(v string) string {
		return `spec.authorities[0].signer.profiles[0]: Invalid value: "` + v + `": must be an AWS Signer signing-profile ARN, arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION], with partition aws, aws-us-gov or aws-cn; wildcards are not allowed`
	}
	tests := []struct {
		name   string
		mutate func(*v1alpha1.ClusterImagePolicySpec)
		want   string
	}{
		{"key and signer", withAuthority(v1alpha1.Authority{Name: "a", Key: kms, Signer: signer}), oneOfKeySigner},
		{"neither key nor signer", withAuthority(v1alpha1.Authority{Name: "a"}), oneOfKeySigner},
		{"kms and data", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: kms.KMS, Data: "-----BEGIN PUBLIC KEY-----"}}), oneOfKey},
		{"data and secretRef", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{Data: "-----BEGIN PUBLIC KEY-----", SecretRef: &v1alpha1.SecretKeyReference{Name: "s", Namespace: "n", Key: "k"}}}), oneOfKey},
		{"empty key", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{}}), oneOfKey},
		{"kms without scheme", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "alias/cosign"}}), badKMS("alias/cosign")},
		{"gcpkms URI", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"}}), badKMS("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k")},
		{"awskms without key", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///"}}), badKMS("awskms:///")},
		{"data not PEM", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{Data: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}}),
			`spec.authorities[0].key.data: Invalid value: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE": data must be a PEM-encoded public key (-----BEGIN PUBLIC KEY-----)`},
		{"secretRef without key", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{SecretRef: &v1alpha1.SecretKeyReference{Name: "s", Namespace: "n"}}}),
			`spec.authorities[0].key.secretRef.key: Invalid value: "": spec.authorities[0].key.secretRef.key in body should be at least 1 chars long`},
		{"bad mode", func(s *v1alpha1.ClusterImagePolicySpec) { s.Mode = "Audit" },
			// The API server adds that CEL rules wait for the schema errors to be fixed.
			`[spec.mode: Unsupported value: "Audit": supported values: "Enforce", "Warn", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`},
		{"bad revocation", withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{profileARN}, Revocation: "Sometimes"}}),
			`[spec.authorities[0].signer.revocation: Unsupported value: "Sometimes": supported values: "Enforce", "BestEffort", "Skip", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`},
		{"ARN of another service", withProfile("arn:aws:kms:us-east-1:123456789012:/signing-profiles/P1"), badARN("arn:aws:kms:us-east-1:123456789012:/signing-profiles/P1")},
		{"ARN of another partition", withProfile("arn:aws-iso:signer:us-iso-east-1:123456789012:/signing-profiles/P1"), badARN("arn:aws-iso:signer:us-iso-east-1:123456789012:/signing-profiles/P1")},
		{"ARN without account", withProfile("arn:aws:signer:us-east-1::/signing-profiles/P1"), badARN("arn:aws:signer:us-east-1::/signing-profiles/P1")},
		{"ARN wildcard", withProfile("arn:aws:signer:us-east-1:123456789012:/signing-profiles/*"), badARN("arn:aws:signer:us-east-1:123456789012:/signing-profiles/*")},
		{"bare wildcard", withProfile("*"), badARN("*")},
		{"empty profiles", withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []v1alpha1.SigningProfileARN{}}}),
			`spec.authorities[0].signer.profiles: Invalid value: 0: spec.authorities[0].signer.profiles in body should have at least 1 items`},
		{"duplicate authority names", func(s *v1alpha1.ClusterImagePolicySpec) {
			s.Authorities = []v1alpha1.Authority{{Name: "ci", Key: kms}, {Name: "ci", Signer: signer}}
		}, `spec.authorities: Invalid value: authority names must be unique within a policy: rename the duplicate`},
		{"bad authority name", withAuthority(v1alpha1.Authority{Name: "CI_Key", Key: kms}),
			`spec.authorities[0].name: Invalid value: "CI_Key": name must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit`},
		{"empty images", func(s *v1alpha1.ClusterImagePolicySpec) { s.Images = []v1alpha1.ImageGlob{} },
			`spec.images: Invalid value: 0: spec.images in body should have at least 1 items`},
		{"empty authorities", func(s *v1alpha1.ClusterImagePolicySpec) { s.Authorities = []v1alpha1.Authority{} },
			`spec.authorities: Invalid value: 0: spec.authorities in body should have at least 1 items`},
		{"empty glob", func(s *v1alpha1.ClusterImagePolicySpec) { s.Images = []v1alpha1.ImageGlob{{Glob: ""}} },
			`spec.images[0].glob: Invalid value: "": spec.images[0].glob in body should be at least 1 chars long`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Create(context.Background(), policy(tt.mutate), client.DryRunAll)
			if err == nil {
				t.Fatal("accepted, want rejected")
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("not an Invalid error: %v", err)
			}
			if got, want := err.Error(), prefix+tt.want; got != want {
				t.Errorf("message mismatch\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// TestGeneratedFilesAreCurrent regenerates the CRD and deepcopy code into a
// scratch copy and fails if they differ from what is committed.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	gen, err := filepath.Abs("../../../../bin/controller-gen")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gen); err != nil {
		t.Fatalf("controller-gen is not built: run `make tools` (%v)", err)
	}
	out := t.TempDir()
	cmd := exec.Command(gen, "crd", "paths=./", "output:crd:artifacts:config="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen crd: %v\n%s", err, b)
	}
	compare(t, filepath.Join(out, filepath.Base(crdPath)), crdPath)

	// Deepcopy is written next to the types: generate in a copy of the package.
	pkg := t.TempDir()
	for _, f := range []string{"groupversion_info.go", "clusterimagepolicy_types.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	header, _ := filepath.Abs("../../../../hack/boilerplate.go.txt")
	cmd = exec.Command(gen, "object:headerFile="+header, "paths=./")
	cmd.Dir = pkg
	// The copy lives outside the module: give it this module's context.
	if err := os.WriteFile(filepath.Join(pkg, "go.mod"), []byte("module example.com/copy\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen object: %v\n%s", err, b)
	}
	compare(t, filepath.Join(pkg, "zz_generated.deepcopy.go"), "zz_generated.deepcopy.go")
}

func compare(t *testing.T, generated, committed string) {
	t.Helper()
	a, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s is stale: run `make generate` and commit the result", committed)
	}
}
