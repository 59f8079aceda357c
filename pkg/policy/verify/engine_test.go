package verify_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/servers/registry"
	"github.com/signet-dev/signet/test/stack"
)

// world is a registry of this test's own (so its request counts are this
// test's alone), two KMS keys on the stack's KMS test server, and images
// signed by the real cosign CLI.
type world struct {
	reg       *registry.Server
	host      string
	aliasA    string
	aliasB    string
	verifiers *verify.Verifiers
	cosign    string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	stack.Load(t) // KMS endpoint, region and credentials for the SDK's chain
	w := &world{reg: registry.New()}
	hs := httptest.NewServer(w.reg)
	t.Cleanup(hs.Close)
	w.host = strings.TrimPrefix(hs.URL, "http://")
	root, _ := filepath.Abs("../../..")
	w.cosign = filepath.Join(root, "bin", "cosign")
	if _, err := os.Stat(w.cosign); err != nil {
		t.Fatalf("the cosign CLI is not built: run `make test-tools` (%v)", err)
	}
	ctx := context.Background()
	for i, alias := range []*string{&w.aliasA, &w.aliasB} {
		*alias = fmt.Sprintf("alias/engine-%d-%d", time.Now().UnixNano(), i)
		if err := fixtures.CreateKMSAlias(ctx, *alias); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if w.verifiers, err = verify.New(ctx, verify.Config{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// image pushes a new image as repo:tag and signs it with the given aliases.
func (w *world) image(t *testing.T, repoTag string, signers ...string) (tagRef, digest string) {
	t.Helper()
	ref := w.host + "/" + repoTag
	d, err := fixtures.PushRandom(ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, alias := range signers {
		w.sign(t, ref[:strings.LastIndex(ref, ":")]+"@"+d, alias)
	}
	return ref, d
}

func (w *world) sign(t *testing.T, digestRef, alias string) {
	t.Helper()
	if err := fixtures.CosignSign(w.cosign, alias, digestRef); err != nil {
		t.Fatal(err)
	}
}

func (w *world) policy(t *testing.T, name string, mode v1alpha1.PolicyMode, glob string, aliases ...string) *policy.Policy {
	t.Helper()
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterImagePolicySpec{
		Mode: mode, Images: []v1alpha1.ImageGlob{{Glob: glob}},
	}}
	for i, a := range aliases {
		cip.Spec.Authorities = append(cip.Spec.Authorities, v1alpha1.Authority{Name: fmt.Sprintf("key-%d", i), Key: &v1alpha1.KeyAuthority{KMS: "awskms:///" + a}})
	}
	p, errs := policy.Compile(context.Background(), cip, w.verifiers.Factory(), nil)
	if len(errs) > 0 || p.NotReady != nil {
		t.Fatalf("compile: %v %v", errs, p.NotReady)
	}
	return p
}

func (w *world) engine(noMatch policy.NoMatchPolicy, opts policy.CacheOptions) *policy.Engine {
	return &policy.Engine{Cache: policy.NewVerdictCache(opts), Resolver: w.verifiers.Registry, NoMatch: noMatch}
}

func (w *world) requests() int {
	n := 0
	for kind, c := range w.reg.Requests() {
		if kind != registry.KindPing {
			n += c
		}
	}
	return n
}

func one(img string) policy.Request {
	return policy.Request{Images: []policy.ImageRef{{Path: "args[0]", Ref: img}}}
}

func TestEngineOverRealVerifiers(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	a, aDigest := w.image(t, "team/app:a", w.aliasA)
	b, _ := w.image(t, "team/app:b", w.aliasB)
	ab, _ := w.image(t, "team/app:ab", w.aliasA, w.aliasB)
	none, _ := w.image(t, "team/app:none")
	glob := w.host + "/team/**"
	either := w.policy(t, "either", v1alpha1.ModeEnforce, glob, w.aliasA, w.aliasB)
	onlyA := w.policy(t, "only-a", v1alpha1.ModeEnforce, glob, w.aliasA)
	onlyB := w.policy(t, "only-b", v1alpha1.ModeEnforce, glob, w.aliasB)
	warnB := w.policy(t, "warn-b", v1alpha1.ModeWarn, glob, w.aliasB)

	for _, tt := range []struct {
		name     string
		policies []*policy.Policy
		noMatch  policy.NoMatchPolicy
		image    string
		want     policy.Verdict
	}{
		{"OR: first authority", []*policy.Policy{either}, "", a, policy.VerdictAdmitted},
		{"OR: second authority", []*policy.Policy{either}, "", b, policy.VerdictAdmitted},
		{"OR: neither", []*policy.Policy{either}, "", none, policy.VerdictDenied},
		{"AND: one of two policies fails", []*policy.Policy{onlyA, onlyB}, "", a, policy.VerdictDenied},
		{"AND: both satisfied", []*policy.Policy{onlyA, onlyB}, "", ab, policy.VerdictAdmitted},
		{"Warn policy fails alone", []*policy.Policy{onlyA, warnB}, "", a, policy.VerdictWarned},
		{"no match: deny", []*policy.Policy{onlyA}, policy.NoMatchDeny, w.host + "/elsewhere/app:a", policy.VerdictDenied},
		{"no match: warn", []*policy.Policy{onlyA}, policy.NoMatchWarn, w.host + "/elsewhere/app:a", policy.VerdictWarned},
		{"no match: allow", []*policy.Policy{onlyA}, policy.NoMatchAllow, w.host + "/elsewhere/app:a", policy.VerdictAdmitted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := w.engine(tt.noMatch, policy.CacheOptions{}).Evaluate(ctx, tt.policies, one(tt.image))
			if got := d.Images[0].Verdict; got != tt.want {
				t.Fatalf("verdict %s, want %s: %s", got, tt.want, d.Images[0].Message())
			}
		})
	}

	t.Run("tag resolved to the digest that was verified", func(t *testing.T) {
		d := w.engine("", policy.CacheOptions{}).Evaluate(ctx, []*policy.Policy{onlyA}, one(a))
		if d.Images[0].Digest != aDigest || !d.Images[0].Resolved {
			t.Fatalf("digest %q resolved %v, want %s", d.Images[0].Digest, d.Images[0].Resolved, aDigest)
		}
	})

	t.Run("identical images in one request are verified once; a second request hits the cache", func(t *testing.T) {
		img, _ := w.image(t, "team/dup:v1", w.aliasA)
		e := w.engine("", policy.CacheOptions{})
		w.reg.Reset()
		single := e.Evaluate(ctx, []*policy.Policy{onlyA}, one(img))
		perImage := w.requests()

		img2, _ := w.image(t, "team/dup:v2", w.aliasA)
		w.reg.Reset()
		req := policy.Request{}
		for i := 0; i < 3; i++ {
			req.Images = append(req.Images, policy.ImageRef{Path: fmt.Sprintf("spec.containers[%d].image", i), Ref: img2})
		}
		d := e.Evaluate(ctx, []*policy.Policy{onlyA}, req)
		if !single.Allowed() || !d.Allowed() || w.requests() != perImage {
			t.Fatalf("3 identical images made %d registry requests, one image makes %d", w.requests(), perImage)
		}
		w.reg.Reset()
		if d := e.Evaluate(ctx, []*policy.Policy{onlyA}, one(img2[:strings.LastIndex(img2, ":")]+"@"+d.Images[0].Digest)); !d.Allowed() || w.requests() != 0 {
			t.Fatalf("cached digest made %d registry requests, want 0", w.requests())
		}
	})

	t.Run("100 concurrent identical evaluations do the registry work of one", func(t *testing.T) {
		ref, digest := w.image(t, "team/burst:v1", w.aliasA)
		pinned := ref[:strings.LastIndex(ref, ":")] + "@" + digest
		baselineRef, baselineDigest := w.image(t, "team/burst:baseline", w.aliasA)
		w.reg.Reset()
		w.engine("", policy.CacheOptions{}).Evaluate(ctx, []*policy.Policy{onlyA}, one(baselineRef[:strings.LastIndex(baselineRef, ":")]+"@"+baselineDigest))
		perVerification := w.requests()

		e := w.engine("", policy.CacheOptions{})
		w.reg.Reset()
		var wg sync.WaitGroup
		var mu sync.Mutex
		denied := 0
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !e.Evaluate(ctx, []*policy.Policy{onlyA}, one(pinned)).Allowed() {
					mu.Lock()
					denied++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if denied != 0 || w.requests() != perVerification {
			t.Fatalf("%d denied; %d registry requests for 100 evaluations, one verification makes %d", denied, w.requests(), perVerification)
		}
		t.Logf("one verification: %d registry requests (%v)", perVerification, w.reg.Requests())
	})

	t.Run("not signed is cached only for the negative TTL", func(t *testing.T) {
		now := time.Unix(1_000_000, 0)
		e := w.engine("", policy.CacheOptions{Now: func() time.Time { return now }})
		ref, digest := w.image(t, "team/late:v1")
		pinned := ref[:strings.LastIndex(ref, ":")] + "@" + digest
		if e.Evaluate(ctx, []*policy.Policy{onlyA}, one(pinned)).Allowed() {
			t.Fatal("unsigned image admitted")
		}
		w.sign(t, pinned, w.aliasA) // the pipeline catches up
		w.reg.Reset()
		now = now.Add(29 * time.Second)
		if e.Evaluate(ctx, []*policy.Policy{onlyA}, one(pinned)).Allowed() || w.requests() != 0 {
			t.Fatalf("within the negative TTL the cached denial must answer (%d requests)", w.requests())
		}
		now = now.Add(2 * time.Second)
		if d := e.Evaluate(ctx, []*policy.Policy{onlyA}, one(pinned)); !d.Allowed() {
			t.Fatalf("after the negative TTL the new signature must count: %s", d.Images[0].Message())
		}
	})
}
