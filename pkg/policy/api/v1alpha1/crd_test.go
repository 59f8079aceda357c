package v1alpha1_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/stack"
)

// root is the repository root, relative to this package.
const root = "../../../.."

var (
	crdDir     = filepath.Join(root, "config/crd/bases")
	crdFile    = "signet.dev_clusterimagepolicies.yaml"
	samplesDir = filepath.Join(root, "config/samples")
)

// installCRD creates or updates the generated CRD on the stack's API server,
// waits until it is established and served, and returns a typed client.
func installCRD(t *testing.T) client.Client {
	t.Helper()
	env := stack.Load(t)
	env.InstallCRD(t)
	cfg := env.RESTConfig(t)
	// The table tests send a request per case; client-go's default of 5
	// requests a second would make them wait, not the API server.
	cfg.QPS, cfg.Burst = 100, 200
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSamplesAreAccepted(t *testing.T) {
	c := installCRD(t)
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s: %v", samplesDir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var docs []*v1alpha1.ClusterImagePolicy
			dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
			for {
				p := &v1alpha1.ClusterImagePolicy{}
				if err := dec.Decode(p); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, p)
			}
			if len(docs) != 1 {
				t.Fatalf("%d YAML documents, want exactly one ClusterImagePolicy per sample", len(docs))
			}
			p := docs[0]
			// A policy of the same name left in the shared stack must not
			// fail the sample: dry-run under a generated name.
			p.GenerateName, p.Name = p.Name+"-", ""
			if err := c.Create(t.Context(), p, client.DryRunAll); err != nil {
				t.Fatalf("sample rejected: %v", err)
			}
			if p.Spec.Mode == "" {
				t.Error("mode was not defaulted")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := installCRD(t)
	p := policy(func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Authorities = append(s.Authorities, v1alpha1.Authority{Name: "signer", Signer: &v1alpha1.SignerAuthority{Profiles: []string{profileARN}}})
	})
	if err := c.Create(t.Context(), p, client.DryRunAll); err != nil {
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

func withAuthority(a v1alpha1.Authority) func(*v1alpha1.ClusterImagePolicySpec) {
	return func(s *v1alpha1.ClusterImagePolicySpec) { s.Authorities = []v1alpha1.Authority{a} }
}

func withProfile(arn string) func(*v1alpha1.ClusterImagePolicySpec) {
	return withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []string{arn}}})
}

func withSecretRef(ref v1alpha1.SecretKeyReference) func(*v1alpha1.ClusterImagePolicySpec) {
	return withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{SecretRef: &ref}})
}

func withGlob(g string) func(*v1alpha1.ClusterImagePolicySpec) {
	return func(s *v1alpha1.ClusterImagePolicySpec) { s.Images = []v1alpha1.ImageGlob{{Glob: g}} }
}

func TestValidShapesAreAccepted(t *testing.T) {
	c := installCRD(t)
	kms := func(uri string) v1alpha1.Authority {
		return v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: uri}}
	}
	signer := func(arn string) v1alpha1.Authority {
		return v1alpha1.Authority{Name: "a", Signer: &v1alpha1.SignerAuthority{Profiles: []string{arn}}}
	}
	for name, mutate := range map[string]func(*v1alpha1.ClusterImagePolicySpec){
		"kms key id":         withAuthority(kms("awskms:///1234abcd-12ab-34cd-56ef-1234567890ab")),
		"kms key arn":        withAuthority(kms("awskms:///arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")),
		"kms alias arn gov":  withAuthority(kms("awskms:///arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/cosign")),
		"kms with endpoint":  withAuthority(kms("awskms://kms.us-east-1.amazonaws.com/alias/cosign")),
		"profile version":    withAuthority(signer(profileARN + "/a1B2c3D4e5")),
		"china partition":    withAuthority(signer("arn:aws-cn:signer:cn-north-1:123456789012:/signing-profiles/Prof_1")),
		"govcloud partition": withAuthority(signer("arn:aws-us-gov:signer:us-gov-west-1:123456789012:/signing-profiles/P1")),
		"secretRef":          withSecretRef(v1alpha1.SecretKeyReference{Name: "cosign.pub-1", Namespace: "signet-system", Key: "cosign.pub"}),
		"63-character name":  withAuthority(v1alpha1.Authority{Name: strings.Repeat("a", 63), Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/x"}}),
		"glob with port":     withGlob("localhost:5000/team/*"),
		"short glob":         withGlob("nginx"),
		"static pass":        withAuthority(v1alpha1.Authority{Name: "a", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass}}),
		"static fail":        withAuthority(v1alpha1.Authority{Name: "a", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticFail, Message: "use the mirror"}}),
		"static pass and key": func(s *v1alpha1.ClusterImagePolicySpec) {
			s.Authorities = []v1alpha1.Authority{{Name: "a", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass}}, {Name: "b", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/x"}}}
		},
		"break-glass allowed": func(s *v1alpha1.ClusterImagePolicySpec) { s.BreakGlass = &v1alpha1.BreakGlass{Allowed: true} },
		"key with attestations": withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///alias/x", Attestations: []v1alpha1.AttestationRequirement{
			{Name: "scan", PredicateType: "vuln", MaxAge: &metav1.Duration{Duration: 168 * time.Hour}, Condition: "predicate.scanner.result.Results.size() > 0"},
			{Name: "provenance", PredicateType: "https://slsa.dev/provenance/v1"},
		}}}),
	} {
		t.Run(name, func(t *testing.T) {
			if err := c.Create(t.Context(), policy(mutate), client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// TestInvalidShapesAreRejected compares the API server's whole message: it
// is what a user applying a broken policy reads.
func TestInvalidShapesAreRejected(t *testing.T) {
	c := installCRD(t)
	const prefix = `ClusterImagePolicy.signet.dev "under-test" is invalid: `
	// An enum error stops the API server before the CEL rules run, and it
	// says so.
	const celSkipped = `, <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`
	kms := &v1alpha1.KeyAuthority{KMS: "awskms:///alias/cosign"}
	signer := &v1alpha1.SignerAuthority{Profiles: []string{profileARN}}
	secretRef := &v1alpha1.SecretKeyReference{Name: "s", Namespace: "n", Key: "k"}
	const pem = "-----BEGIN PUBLIC KEY-----"

	const oneOfKeySigner = `spec.authorities[0]: Invalid value: set exactly one of key (a cosign key: kms, data or secretRef), signer (AWS Signer signing profiles) or static (pass or fail without a signature)`
	const staticMessage = `spec.authorities[0].static: Invalid value: a static fail authority needs a message telling users what to do instead (e.g. where to get images); pass takes no message`
	pass := &v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass}
	const oneOfKey = `spec.authorities[0].key: Invalid value: set exactly one of kms (an awskms:// key URI), data (a PEM public key) or secretRef (a Secret holding one)`
	badKMS := func(v string) string {
		return `spec.authorities[0].key.kms: Invalid value: "` + v + `": kms must be an AWS KMS key URI: awskms:///KEY_ID, awskms:///alias/NAME or awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`
	}
	badARN := func(v string) string {
		return `spec.authorities[0].signer.profiles[0]: Invalid value: "` + v + `": must be an AWS Signer signing-profile ARN, arn:PARTITION:signer:REGION:ACCOUNT:/signing-profiles/NAME[/VERSION], with partition aws, aws-us-gov or aws-cn; wildcards are not allowed`
	}
	badGlobChars := func(v string) string {
		return `spec.images[0].glob: Invalid value: "` + v + `": glob may contain only lower-case letters, digits, '.', '_', '-', '/', ':' (a registry port) and '*'`
	}
	globTagged := func(v string) string {
		return `spec.images[0].glob: Invalid value: "` + v + `": glob must not contain a tag or digest: remove it; the policy governs every tag and digest of a matching repository`
	}

	tests := []struct {
		name   string
		mutate func(*v1alpha1.ClusterImagePolicySpec)
		want   string
	}{
		// Authority: exactly one of key | signer.
		{"key and signer", withAuthority(v1alpha1.Authority{Name: "a", Key: kms, Signer: signer}), oneOfKeySigner},
		{"neither key nor signer", withAuthority(v1alpha1.Authority{Name: "a"}), oneOfKeySigner},
		{"static and key", withAuthority(v1alpha1.Authority{Name: "a", Key: kms, Static: pass}), oneOfKeySigner},
		{"static and signer", withAuthority(v1alpha1.Authority{Name: "a", Signer: signer, Static: pass}), oneOfKeySigner},

		// Static authorities.
		{"static fail without message", withAuthority(v1alpha1.Authority{Name: "a", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticFail}}), staticMessage},
		{"static pass with message", withAuthority(v1alpha1.Authority{Name: "a", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass, Message: "m"}}), staticMessage},
		{"static fail beside a key", func(s *v1alpha1.ClusterImagePolicySpec) {
			s.Authorities = []v1alpha1.Authority{{Name: "a", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticFail, Message: "m"}}, {Name: "b", Key: kms}}
		}, `spec.authorities: Invalid value: a static fail authority denies every image the policy governs: make it the policy's only authority`},
		{"bad static action", withAuthority(v1alpha1.Authority{Name: "a", Static: &v1alpha1.StaticAuthority{Action: "allow"}}),
			`[spec.authorities[0].static.action: Unsupported value: "allow": supported values: "pass", "fail"` + celSkipped},

		// Key: exactly one of kms | data | secretRef.
		{"kms and data", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: kms.KMS, Data: pem}}), oneOfKey},
		{"kms and secretRef", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: kms.KMS, SecretRef: secretRef}}), oneOfKey},
		{"data and secretRef", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{Data: pem, SecretRef: secretRef}}), oneOfKey},
		{"all three", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: kms.KMS, Data: pem, SecretRef: secretRef}}), oneOfKey},
		{"empty key", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{}}), oneOfKey},

		// kms URIs.
		{"kms without scheme", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "alias/cosign"}}), badKMS("alias/cosign")},
		{"gcpkms URI", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"}}), badKMS("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k")},
		{"awskms without key", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{KMS: "awskms:///"}}), badKMS("awskms:///")},

		// data and secretRef.
		{"data not PEM", withAuthority(v1alpha1.Authority{Name: "a", Key: &v1alpha1.KeyAuthority{Data: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}}),
			`spec.authorities[0].key.data: Invalid value: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE": data must be a PEM-encoded public key (-----BEGIN PUBLIC KEY-----)`},
		{"secretRef without key", withSecretRef(v1alpha1.SecretKeyReference{Name: "s", Namespace: "n"}),
			`spec.authorities[0].key.secretRef.key: Invalid value: "": key must be a Secret data key: letters, digits, '-', '_' and '.', e.g. cosign.pub`},
		{"secretRef bad name", withSecretRef(v1alpha1.SecretKeyReference{Name: "Cosign_Pub", Namespace: "n", Key: "k"}),
			`spec.authorities[0].key.secretRef.name: Invalid value: "Cosign_Pub": name must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`},
		{"secretRef bad namespace", withSecretRef(v1alpha1.SecretKeyReference{Name: "s", Namespace: "signet.system", Key: "k"}),
			`spec.authorities[0].key.secretRef.namespace: Invalid value: "signet.system": namespace must be a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit`},

		// Enums.
		{"bad mode", func(s *v1alpha1.ClusterImagePolicySpec) { s.Mode = "Audit" },
			`[spec.mode: Unsupported value: "Audit": supported values: "Enforce", "Warn"` + celSkipped},
		{"bad revocation", withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []string{profileARN}, Revocation: "Sometimes"}}),
			`[spec.authorities[0].signer.revocation: Unsupported value: "Sometimes": supported values: "Enforce", "BestEffort", "Skip"` + celSkipped},

		// Signer profile ARNs.
		{"ARN of another service", withProfile("arn:aws:kms:us-east-1:123456789012:/signing-profiles/P1"), badARN("arn:aws:kms:us-east-1:123456789012:/signing-profiles/P1")},
		{"ARN of another partition", withProfile("arn:aws-iso:signer:us-iso-east-1:123456789012:/signing-profiles/P1"), badARN("arn:aws-iso:signer:us-iso-east-1:123456789012:/signing-profiles/P1")},
		{"ARN without account", withProfile("arn:aws:signer:us-east-1::/signing-profiles/P1"), badARN("arn:aws:signer:us-east-1::/signing-profiles/P1")},
		{"ARN with short account", withProfile("arn:aws:signer:us-east-1:12345:/signing-profiles/P1"), badARN("arn:aws:signer:us-east-1:12345:/signing-profiles/P1")},
		{"ARN wildcard", withProfile("arn:aws:signer:us-east-1:123456789012:/signing-profiles/*"), badARN("arn:aws:signer:us-east-1:123456789012:/signing-profiles/*")},
		{"bare wildcard", withProfile("*"), badARN("*")},
		{"signer with attestations", withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []string{profileARN},
			Attestations: []runtime.RawExtension{{Raw: []byte(`{"name":"scan","predicateType":"vuln"}`)}}}}),
			`spec.authorities[0].signer.attestations: Invalid value: a signer authority cannot require attestations: Signet checks in-toto attestations made with cosign attest and a cosign key; list them under key.attestations of a key authority that trusts the key your pipeline attests with`},
		{"empty profiles", withAuthority(v1alpha1.Authority{Name: "s", Signer: &v1alpha1.SignerAuthority{Profiles: []string{}}}),
			`spec.authorities[0].signer.profiles: Invalid value: 0: spec.authorities[0].signer.profiles in body should have at least 1 items`},

		// Authority names and lists.
		{"duplicate authority names", func(s *v1alpha1.ClusterImagePolicySpec) {
			s.Authorities = []v1alpha1.Authority{{Name: "ci", Key: kms}, {Name: "ci", Signer: signer}}
		}, `spec.authorities: Invalid value: authority names must be unique within a policy: rename the duplicate`},
		{"bad authority name", withAuthority(v1alpha1.Authority{Name: "CI_Key", Key: kms}),
			`spec.authorities[0].name: Invalid value: "CI_Key": name must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit`},
		{"empty authority name", withAuthority(v1alpha1.Authority{Name: "", Key: kms}),
			`spec.authorities[0].name: Invalid value: "": name must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit`},
		{"empty authorities", func(s *v1alpha1.ClusterImagePolicySpec) { s.Authorities = []v1alpha1.Authority{} },
			`spec.authorities: Invalid value: 0: spec.authorities in body should have at least 1 items`},

		// Images.
		{"empty images", func(s *v1alpha1.ClusterImagePolicySpec) { s.Images = []v1alpha1.ImageGlob{} },
			`spec.images: Invalid value: 0: spec.images in body should have at least 1 items`},
		{"empty glob", withGlob(""),
			`spec.images[0].glob: Invalid value: "": spec.images[0].glob in body should be at least 1 chars long`},
		{"glob with tag", withGlob("nginx:1.27"), globTagged("nginx:1.27")},
		{"glob with digest", withGlob("nginx@sha256:0123"), globTagged("nginx@sha256:0123")},
		{"glob with upper case", withGlob("Registry.example.com/**"), badGlobChars("Registry.example.com/**")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Create(t.Context(), policy(tt.mutate), client.DryRunAll)
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

// TestGeneratedFilesAreCurrent runs `make generate`'s controller-gen
// commands into scratch folders and compares with what is committed.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(abs, "bin/controller-gen")
	if _, err := os.Stat(gen); err != nil {
		t.Fatalf("controller-gen is not built: run `make tools` (%v)", err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(gen, args...)
		cmd.Dir = abs
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	crdOut := t.TempDir()
	run("crd", "paths=./pkg/policy/api/...", "output:crd:artifacts:config="+crdOut)
	compare(t, filepath.Join(crdOut, crdFile), filepath.Join(crdDir, crdFile))

	objOut := t.TempDir()
	run("object:headerFile=hack/boilerplate.go.txt", "paths=./pkg/policy/api/...", "output:object:dir="+objOut)
	compare(t, filepath.Join(objOut, "zz_generated.deepcopy.go"), "zz_generated.deepcopy.go")
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
		t.Errorf("%s is not what controller-gen generates from the API types: run make generate", committed)
	}
}
