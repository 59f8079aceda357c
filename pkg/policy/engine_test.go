package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// scriptedVerifier answers by digest: the engine's rules (AND across
// policies, OR across authorities, modes, no-match, dedupe, messages) do not
// depend on the scheme. The schemes' own packages test real signatures.
type scriptedVerifier struct {
	id      string
	signed  map[string]Reason // digest -> reason; missing: NoSignature
	calls   atomic.Int32
	describ string
}

func (v *scriptedVerifier) Verify(_ context.Context, img Image) Result {
	v.calls.Add(1)
	r := Result{Image: img.Ref.String(), Authority: v.Describe(), Reason: ReasonNoSignature, Cause: "no signature found"}
	if reason, ok := v.signed[img.Ref.DigestStr()]; ok {
		r.Reason = reason
		switch reason {
		case ReasonVerified:
			r.Cause, r.Signer = "", v.id
		case ReasonRegistryUnavailable:
			r.Cause = "registry unavailable: connection refused"
		case ReasonRevoked:
			r.Cause = "signing job was revoked"
		}
	}
	return r
}
func (v *scriptedVerifier) Identity() string { return v.id }
func (v *scriptedVerifier) Describe() string { return v.describ }

type mapResolver map[string]string // tag reference -> digest

func (m mapResolver) Resolve(_ context.Context, ref name.Reference, _ authn.Keychain) (name.Digest, error) {
	d, ok := m[ref.String()]
	if !ok {
		return name.Digest{}, errors.New("MANIFEST_UNKNOWN: manifest unknown")
	}
	return ref.Context().Digest(d), nil
}

const (
	dA  = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB  = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	dC  = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	reg = "reg.example.com"
)

type fixture struct {
	kms, signer, other *scriptedVerifier
	factory            VerifierFactory
}

func newFixture() *fixture {
	f := &fixture{
		kms:    &scriptedVerifier{id: "kms", describ: "awskms:///alias/cosign", signed: map[string]Reason{dA: ReasonVerified, dC: ReasonRegistryUnavailable}},
		signer: &scriptedVerifier{id: "signer", describ: "signer profile EcrSignerProfile", signed: map[string]Reason{dB: ReasonVerified, dC: ReasonRevoked}},
		other:  &scriptedVerifier{id: "other", describ: "awskms:///alias/other", signed: map[string]Reason{}},
	}
	f.factory = func(_ context.Context, a v1alpha1.Authority, _ []byte) (Verifier, error) {
		switch {
		case a.Signer != nil:
			return f.signer, nil
		case a.Key.KMS == "awskms:///alias/cosign":
			return f.kms, nil
		case a.Key.KMS == "awskms:///alias/down":
			return nil, errors.New("operation error KMS: GetPublicKey, connection refused")
		case a.Key.Data == "not pem":
			return nil, &InvalidAuthorityError{Field: "key.data", Value: "not pem", Msg: "not a PEM public key"}
		}
		return f.other, nil
	}
	return f
}

func kmsAuth(name, uri string) v1alpha1.Authority {
	return v1alpha1.Authority{Name: name, Key: &v1alpha1.KeyAuthority{KMS: uri}}
}

func cip(name string, mode v1alpha1.PolicyMode, globs []string, auths ...v1alpha1.Authority) *v1alpha1.ClusterImagePolicy {
	p := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterImagePolicySpec{Mode: mode, Authorities: auths}}
	for _, g := range globs {
		p.Spec.Images = append(p.Spec.Images, v1alpha1.ImageGlob{Glob: g})
	}
	return p
}

func compileAll(t *testing.T, f *fixture, cips ...*v1alpha1.ClusterImagePolicy) []*Policy {
	t.Helper()
	var out []*Policy
	for _, c := range cips {
		p, errs := Compile(context.Background(), c, f.factory, nil)
		if len(errs) > 0 {
			t.Fatalf("compile %s: %v", c.Name, errs)
		}
		out = append(out, p)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	signerAuth := v1alpha1.Authority{Name: "ecr-signing", Signer: &v1alpha1.SignerAuthority{Profiles: []string{"arn:aws:signer:us-east-1:123456789012:/signing-profiles/EcrSignerProfile"}}}
	prod := cip("prod", v1alpha1.ModeEnforce, []string{reg + "/prod/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign"), signerAuth)
	kmsOnly := cip("kms-only", v1alpha1.ModeEnforce, []string{reg + "/prod/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign"))
	warnOther := cip("rollout", v1alpha1.ModeWarn, []string{reg + "/**"}, kmsAuth("other", "awskms:///alias/other"))
	notReady := cip("broken", v1alpha1.ModeEnforce, []string{reg + "/prod/**"}, kmsAuth("down", "awskms:///alias/down"))
	allowAddons := cip("addons", v1alpha1.ModeEnforce, []string{reg + "/addons/**"}, v1alpha1.Authority{Name: "aws", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass}})
	denyHub := cip("no-hub", v1alpha1.ModeEnforce, []string{"index.docker.io/**"}, v1alpha1.Authority{Name: "hub", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticFail, Message: "Docker Hub images are not allowed: use " + reg + "/hub/ instead."}})

	tests := []struct {
		name     string
		policies []*v1alpha1.ClusterImagePolicy
		noMatch  NoMatchPolicy
		image    string
		verdict  Verdict
		digest   string
		message  string
	}{
		{
			name: "any authority: kms", policies: []*v1alpha1.ClusterImagePolicy{prod},
			image: reg + "/prod/app@" + dA, verdict: VerdictAdmitted, digest: dA,
			message: `image reg.example.com/prod/app@` + dA + ` (spec.containers[0].image) admitted by ClusterImagePolicy "prod" (authority "ci-kms")`,
		},
		{
			name: "any authority: signer", policies: []*v1alpha1.ClusterImagePolicy{prod},
			image: reg + "/prod/app@" + dB, verdict: VerdictAdmitted, digest: dB,
			message: `image reg.example.com/prod/app@` + dB + ` (spec.containers[0].image) admitted by ClusterImagePolicy "prod" (authority "ecr-signing")`,
		},
		{
			name: "no authority", policies: []*v1alpha1.ClusterImagePolicy{prod},
			image: reg + "/prod/app@sha256:" + strings.Repeat("d", 64), verdict: VerdictDenied, digest: "sha256:" + strings.Repeat("d", 64),
			message: `image reg.example.com/prod/app@sha256:` + strings.Repeat("d", 64) + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature from authority "ci-kms" (awskms:///alias/cosign) or "ecr-signing" (signer profile EcrSignerProfile): no signature found. ` + hintSign,
		},
		{
			name: "all policies: second fails", policies: []*v1alpha1.ClusterImagePolicy{prod, kmsOnly},
			image: reg + "/prod/app@" + dB, verdict: VerdictDenied, digest: dB,
			message: `image reg.example.com/prod/app@` + dB + ` (spec.containers[0].image) denied by ClusterImagePolicy "kms-only": no valid signature from authority "ci-kms" (awskms:///alias/cosign): no signature found. ` + hintSign,
		},
		{
			name: "warn policy fails alone", policies: []*v1alpha1.ClusterImagePolicy{prod, warnOther},
			image: reg + "/prod/app@" + dA, verdict: VerdictWarned, digest: dA,
			message: `image reg.example.com/prod/app@` + dA + ` (spec.containers[0].image) would be denied by ClusterImagePolicy "rollout" (Warn mode): no valid signature from authority "other" (awskms:///alias/other): no signature found. ` + hintSign,
		},
		{
			name: "different causes, transient hint first", policies: []*v1alpha1.ClusterImagePolicy{prod},
			image: reg + "/prod/app@" + dC, verdict: VerdictDenied, digest: dC,
			message: `image reg.example.com/prod/app@` + dC + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature (authority "ci-kms" (awskms:///alias/cosign): registry unavailable: connection refused; authority "ecr-signing" (signer profile EcrSignerProfile): signing job was revoked). ` + hintTransient,
		},
		{
			name: "policy not ready fails closed", policies: []*v1alpha1.ClusterImagePolicy{notReady},
			image: reg + "/prod/app@" + dA, verdict: VerdictDenied, digest: dA,
			message: `image reg.example.com/prod/app@` + dA + ` (spec.containers[0].image) denied by ClusterImagePolicy "broken": the policy is not ready: authority "down": operation error KMS: GetPublicKey, connection refused. Fix the policy (kubectl describe clusterimagepolicy broken) or the key it names.`,
		},
		{
			name: "tag resolved once and reported", policies: []*v1alpha1.ClusterImagePolicy{prod},
			image: reg + "/prod/app:v1", verdict: VerdictAdmitted, digest: dA,
			message: `image reg.example.com/prod/app:v1@` + dA + ` (spec.containers[0].image) admitted by ClusterImagePolicy "prod" (authority "ci-kms")`,
		},
		{
			name: "tag that does not resolve", policies: []*v1alpha1.ClusterImagePolicy{prod},
			image: reg + "/prod/app:missing", verdict: VerdictDenied,
			message: `image reg.example.com/prod/app:missing (spec.containers[0].image) denied: could not resolve tag "missing" to a digest: MANIFEST_UNKNOWN: manifest unknown. ` + hintTransient,
		},
		{
			name: "no match allow", noMatch: NoMatchAllow, image: "nginx", verdict: VerdictAdmitted,
			message: `image nginx (spec.containers[0].image) is not governed by any ClusterImagePolicy. No ClusterImagePolicy governs this image and unmatched images are allowed: add a policy whose images cover it.`,
		},
		{
			name: "no match warn", noMatch: NoMatchWarn, policies: []*v1alpha1.ClusterImagePolicy{prod}, image: "nginx", verdict: VerdictWarned,
			message: `image nginx (spec.containers[0].image) is not governed by any ClusterImagePolicy. No ClusterImagePolicy governs this image and unmatched images are allowed with a warning: add a policy whose images cover it.`,
		},
		{
			name: "no match deny", noMatch: NoMatchDeny, image: "nginx", verdict: VerdictDenied,
			message: `image nginx (spec.containers[0].image) is not governed by any ClusterImagePolicy. No ClusterImagePolicy governs this image and unmatched images are denied: add a policy whose images cover it.`,
		},
		{
			name: "static pass governs under no match deny", noMatch: NoMatchDeny, policies: []*v1alpha1.ClusterImagePolicy{allowAddons},
			image: reg + "/addons/cni@" + dB, verdict: VerdictAdmitted, digest: dB,
			message: `image reg.example.com/addons/cni@` + dB + ` (spec.containers[0].image) admitted by ClusterImagePolicy "addons" (authority "aws")`,
		},
		{
			name: "static fail denies with the policy's message", policies: []*v1alpha1.ClusterImagePolicy{denyHub},
			image: "nginx@" + dA, verdict: VerdictDenied, digest: dA,
			message: `image nginx@` + dA + ` (spec.containers[0].image) denied by ClusterImagePolicy "no-hub": Docker Hub images are not allowed: use reg.example.com/hub/ instead.`,
		},
		{
			name: "bad reference", image: "Reg.example.com/App", verdict: VerdictDenied,
			message: `image Reg.example.com/App (spec.containers[0].image) denied: "Reg.example.com/App" is not a valid image reference: could not parse reference: reg.example.com/App. Fix the image reference.`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			e := &Engine{Cache: NewVerdictCache(CacheOptions{}), Resolver: mapResolver{reg + "/prod/app:v1": dA}, NoMatch: tt.noMatch}
			d := e.Evaluate(context.Background(), compileAll(t, f, tt.policies...), Request{Images: []ImageRef{{Path: "spec.containers[0].image", Ref: tt.image}}})
			if len(d.Images) != 1 {
				t.Fatalf("%d image decisions", len(d.Images))
			}
			got := d.Images[0]
			if got.Verdict != tt.verdict || got.Digest != tt.digest {
				t.Errorf("verdict %s digest %q, want %s %q", got.Verdict, got.Digest, tt.verdict, tt.digest)
			}
			if msg := got.Message(); msg != tt.message {
				t.Errorf("message\n got: %s\nwant: %s", msg, tt.message)
			}
			if d.Allowed() != (tt.verdict != VerdictDenied) {
				t.Errorf("Allowed() = %v", d.Allowed())
			}
		})
	}
}

func TestEvaluateVerifiesIdenticalImagesOnce(t *testing.T) {
	f := newFixture()
	policies := compileAll(t, f, cip("prod", v1alpha1.ModeEnforce, []string{reg + "/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign")))
	e := &Engine{Cache: NewVerdictCache(CacheOptions{}), Resolver: mapResolver{reg + "/app:v1": dA}}
	img := reg + "/app:v1"
	d := e.Evaluate(context.Background(), policies, Request{Images: []ImageRef{
		{Path: "spec.initContainers[0].image", Ref: img},
		{Path: "spec.containers[0].image", Ref: img},
		{Path: "spec.containers[1].image", Ref: reg + "/app@" + dA},
	}})
	if !d.Allowed() || len(d.Images) != 3 || d.Images[1].Path != "spec.containers[0].image" {
		t.Fatalf("decision %+v", d)
	}
	if n := f.kms.calls.Load(); n != 1 {
		t.Fatalf("verifier ran %d times for one digest, want 1", n)
	}
}

func TestCompileFieldErrors(t *testing.T) {
	f := newFixture()
	bad := cip("bad", v1alpha1.ModeEnforce, []string{"reg.example.com/app:v1", "ok.example.com/**"},
		v1alpha1.Authority{Name: "pem", Key: &v1alpha1.KeyAuthority{Data: "not pem"}},
		v1alpha1.Authority{Name: "sec", Key: &v1alpha1.KeyAuthority{SecretRef: &v1alpha1.SecretKeyReference{Namespace: "ns", Name: "missing", Key: "cosign.pub"}}})
	readSecret := func(_ context.Context, ns, name, key string) ([]byte, error) {
		return nil, errors.New(`secrets "missing" not found`)
	}
	_, errs := Compile(context.Background(), bad, f.factory, readSecret)
	want := field.ErrorList{
		field.Invalid(field.NewPath("spec", "images").Index(0).Child("glob"), "reg.example.com/app:v1", "must not contain a tag: globs match repositories, and every tag of a matching repository is governed"),
		field.Invalid(field.NewPath("spec", "authorities").Index(0).Child("key", "data"), "not pem", "not a PEM public key"),
		field.Invalid(field.NewPath("spec", "authorities").Index(1).Child("key", "secretRef"), "ns/missing[cosign.pub]", `secrets "missing" not found`),
	}
	if errs.ToAggregate().Error() != want.ToAggregate().Error() {
		t.Fatalf("errors\n got: %v\nwant: %v", errs.ToAggregate(), want.ToAggregate())
	}
}

func TestSelectorsScopePolicies(t *testing.T) {
	f := newFixture()
	p := cip("team", v1alpha1.ModeEnforce, []string{reg + "/**"}, kmsAuth("other", "awskms:///alias/other"))
	p.Spec.Match = &v1alpha1.PolicyMatch{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}},
		ObjectSelector:    &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "canary", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}}}},
	}
	policies := compileAll(t, f, p)
	e := &Engine{Cache: NewVerdictCache(CacheOptions{}), NoMatch: NoMatchAllow}
	for _, tt := range []struct {
		ns, obj map[string]string
		want    Verdict
	}{
		{map[string]string{"team": "payments"}, nil, VerdictDenied},
		{map[string]string{"team": "web"}, nil, VerdictAdmitted},
		{map[string]string{"team": "payments"}, map[string]string{"canary": "true"}, VerdictAdmitted},
	} {
		d := e.Evaluate(context.Background(), policies, Request{
			Images: []ImageRef{{Ref: reg + "/app@" + dA}},
			Object: ObjectContext{NamespaceLabels: tt.ns, Labels: tt.obj},
		})
		if d.Images[0].Verdict != tt.want {
			t.Errorf("ns %v obj %v: %s, want %s", tt.ns, tt.obj, d.Images[0].Verdict, tt.want)
		}
	}
}

// gatedResolver counts resolutions and holds them until released.
type gatedResolver struct {
	calls atomic.Int32
	gate  chan struct{}
}

func (r *gatedResolver) Resolve(_ context.Context, ref name.Reference, _ authn.Keychain) (name.Digest, error) {
	r.calls.Add(1)
	<-r.gate
	return ref.Context().Digest(dA), nil
}

func TestConcurrentAdmissionsOfOneTagResolveItOnce(t *testing.T) {
	f := newFixture()
	policies := compileAll(t, f, cip("prod", v1alpha1.ModeEnforce, []string{reg + "/**"}, kmsAuth("ci-kms", "awskms:///alias/cosign")))
	// A synctest bubble: synctest.Wait returns once every admission is
	// blocked, the first in the resolver and the others waiting for its
	// answer, so the gate opens only after all 50 have joined.
	synctest.Test(t, func(t *testing.T) {
		r := &gatedResolver{gate: make(chan struct{})}
		e := &Engine{Cache: NewVerdictCache(CacheOptions{}), Resolver: r}
		var wg sync.WaitGroup
		var denied atomic.Int32
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !e.Evaluate(context.Background(), policies, Request{Images: []ImageRef{{Ref: reg + "/app:v1"}}}).Allowed() {
					denied.Add(1)
				}
			}()
		}
		synctest.Wait()
		close(r.gate)
		wg.Wait()
		if r.calls.Load() != 1 || denied.Load() != 0 {
			t.Fatalf("50 concurrent admissions of one tag: %d resolutions, %d denied; want 1 and 0", r.calls.Load(), denied.Load())
		}
	})
}
