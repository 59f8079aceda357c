package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
)

// These tests drive the reconciler with controller-runtime's fake client:
// they check what the store publishes and writes. test/e2e runs the same
// store against the real API server (watch, predicates, status writes).

// keyVerifier trusts the authority's key data; its identity is that data,
// so two authorities with the same key share cached verdicts.
type keyVerifier struct{ key string }

func (v keyVerifier) Verify(context.Context, policy.Image) policy.Result {
	return policy.Result{Reason: policy.ReasonVerified}
}
func (v keyVerifier) Identity() string { return "test;" + v.key }
func (v keyVerifier) Describe() string { return "key " + v.key }

// newVerifier builds keyVerifiers; a key named "unavailable" fails as an
// unreachable KMS key would.
func newVerifier(_ context.Context, a v1alpha1.Authority, _ []byte) (policy.Verifier, error) {
	if a.Key.Data == "unavailable" {
		return nil, errors.New("KMS is unreachable")
	}
	return keyVerifier{key: a.Key.Data}, nil
}

func cip(name, key string) *v1alpha1.ClusterImagePolicy {
	return &v1alpha1.ClusterImagePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: v1alpha1.ClusterImagePolicySpec{
			Images:      []v1alpha1.ImageGlob{{Glob: "registry.example/app/**"}},
			Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{Data: key}}},
		},
	}
}

type fixture struct {
	c     client.Client
	cache *policy.VerdictCache
	store *Store
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.ClusterImagePolicy{}).Build()
	cache := policy.NewVerdictCache(policy.CacheOptions{})
	return &fixture{c: c, cache: cache, store: New(c, c, newVerifier, cache)}
}

func (f *fixture) reconcile(t *testing.T, name string) ctrl.Result {
	t.Helper()
	res, err := f.store.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil {
		t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (f *fixture) ready(t *testing.T, name string) metav1.Condition {
	t.Helper()
	got := &v1alpha1.ClusterImagePolicy{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: name}, got); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		t.Fatalf("%s has no Ready condition", name)
	}
	return *c
}

func names(s *Snapshot) []string {
	var out []string
	for _, p := range s.Policies {
		out = append(out, p.Name)
	}
	return out
}

func TestReconcilePublishesSortedSnapshotsAndRemovesDeletedPolicies(t *testing.T) {
	f := newFixture(t, cip("b", "k1"), cip("a", "k2"))
	before := f.store.Snapshot()
	f.reconcile(t, "b")
	f.reconcile(t, "a")
	if got := strings.Join(names(f.store.Snapshot()), ","); got != "a,b" {
		t.Fatalf("snapshot %q, want a,b", got)
	}
	if len(before.Policies) != 0 {
		t.Fatalf("a published snapshot changed afterwards: %v", names(before))
	}
	c := f.ready(t, "a")
	if c.Status != metav1.ConditionTrue || c.Reason != ReasonCompiled || c.Message != "enforcing 1 image globs with 1 authorities" || c.ObservedGeneration != 1 {
		t.Fatalf("Ready = %+v", c)
	}

	if err := f.c.Delete(context.Background(), cip("b", "k1")); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "b")
	if got := strings.Join(names(f.store.Snapshot()), ","); got != "a" {
		t.Fatalf("after deleting b the snapshot is %q, want a", got)
	}
}

func TestUnavailableAuthorityFailsClosedAndRetriesSooner(t *testing.T) {
	f := newFixture(t, cip("p", "unavailable"))
	res := f.reconcile(t, "p")
	c := f.ready(t, "p")
	want := `images this policy governs are denied until its authorities load: authority "ci": KMS is unreachable`
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonAuthorityUnavailable || c.Message != want {
		t.Fatalf("Ready = %+v\nwant message %q", c, want)
	}
	if res.RequeueAfter != retryUnavailable {
		t.Fatalf("requeue after %s, want %s", res.RequeueAfter, retryUnavailable)
	}
	p := f.store.Snapshot().Policies
	if len(p) != 1 || p[0].NotReady == nil {
		t.Fatalf("a policy whose authority did not load must still be published, not ready (fail closed): %+v", p)
	}
}

func TestAnUnchangedStatusIsNotWrittenAgain(t *testing.T) {
	f := newFixture(t, cip("p", "k1"))
	f.reconcile(t, "p")
	got := &v1alpha1.ClusterImagePolicy{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: "p"}, got); err != nil {
		t.Fatal(err)
	}
	version := got.ResourceVersion
	f.reconcile(t, "p") // the periodic resync: same result
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: "p"}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != version {
		t.Fatalf("an unchanged Ready condition was written again (resourceVersion %s -> %s)", version, got.ResourceVersion)
	}
}

func TestOnlySpecChangesCreationsAndDeletionsCompile(t *testing.T) {
	old := cip("p", "k1")
	statusOnly := old.DeepCopy()
	statusOnly.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Compiled", Message: "another replica"}}
	specChanged := old.DeepCopy()
	specChanged.Generation = 2
	for _, tt := range []struct {
		event     string
		got, want bool
	}{
		{"status write", compileOn.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: statusOnly}), false},
		{"spec change", compileOn.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: specChanged}), true},
		{"creation", compileOn.Create(event.CreateEvent{Object: old}), true},
		{"deletion", compileOn.Delete(event.DeleteEvent{Object: old}), true},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: compiles = %v, want %v", tt.event, tt.got, tt.want)
		}
	}
}

func TestAChangedKeyForgetsTheOldKeysVerdicts(t *testing.T) {
	f := newFixture(t, cip("p", "k1"), cip("shares-k2", "k2"))
	f.reconcile(t, "p")
	f.reconcile(t, "shares-k2")
	ref, err := name.NewDigest("registry.example/app@sha256:" + strings.Repeat("a", 64))
	if err != nil {
		t.Fatal(err)
	}
	img := policy.Image{Ref: ref}
	ctx := context.Background()
	for _, key := range []string{"k1", "k2"} {
		f.cache.Verify(ctx, keyVerifier{key: key}, img)
	}
	if f.cache.Len() != 2 {
		t.Fatalf("cache holds %d verdicts, want 2", f.cache.Len())
	}

	// p moves from k1 to k2, which another policy also uses: k1's verdict
	// goes at once, k2's stays.
	cur := &v1alpha1.ClusterImagePolicy{}
	if err := f.c.Get(ctx, client.ObjectKey{Name: "p"}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Authorities[0].Key.Data = "k2"
	cur.Generation = 2
	if err := f.c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "p")
	if _, o := f.cache.Verify(ctx, keyVerifier{key: "k2"}, img); o != policy.OutcomeHit || f.cache.Len() != 1 {
		t.Fatalf("after the key change: k2 lookup %s, %d verdicts cached; want a hit and 1", o, f.cache.Len())
	}
}

func TestSyncedWaitsForEveryPolicyAtItsGeneration(t *testing.T) {
	f := newFixture(t, cip("a", "k1"), cip("b", "k1"))
	ctx := context.Background()
	f.reconcile(t, "a")
	if err := f.store.Synced(ctx); err == nil || err.Error() != `ClusterImagePolicy "b" is not compiled yet` {
		t.Fatalf("Synced with b not compiled = %v", err)
	}
	f.reconcile(t, "b")
	if err := f.store.Synced(ctx); err != nil {
		t.Fatalf("Synced after compiling both = %v", err)
	}
	cur := &v1alpha1.ClusterImagePolicy{}
	if err := f.c.Get(ctx, client.ObjectKey{Name: "a"}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Generation = 2
	if err := f.c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Synced(ctx); err == nil || err.Error() != `ClusterImagePolicy "a" is not compiled yet` {
		t.Fatalf("Synced with a new generation of a = %v", err)
	}
}

func TestReadyMessageSaysWhatThePolicyEnforces(t *testing.T) {
	pass := v1alpha1.Authority{Name: "addons", Static: &v1alpha1.StaticAuthority{Action: v1alpha1.StaticPass}}
	key := v1alpha1.Authority{Name: "ci", Key: &v1alpha1.KeyAuthority{Data: "k"}}
	allPass := cip("all-pass", "")
	allPass.Spec.Authorities = []v1alpha1.Authority{pass}
	mixed := cip("mixed", "")
	mixed.Spec.Authorities = []v1alpha1.Authority{pass, key}
	breakGlass := cip("break-glass", "k")
	breakGlass.Spec.BreakGlass = &v1alpha1.BreakGlass{Allowed: true}
	f := newFixture(t, allPass, mixed, breakGlass)
	for name, want := range map[string]string{
		"all-pass":    "admitting the images of 1 image globs without a signature: every authority is static pass",
		"mixed":       "enforcing 1 image globs with 2 authorities",
		"break-glass": "enforcing 1 image globs with 1 authorities; break-glass allowed (signet.dev/break-glass annotation)",
	} {
		f.reconcile(t, name)
		if c := f.ready(t, name); c.Status != metav1.ConditionTrue || c.Message != want {
			t.Errorf("%s: Ready = %s %q, want True %q", name, c.Status, c.Message, want)
		}
	}
}
