package admission

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const privateRegistry = "registry.example.com"

// countingReader serves a namespace with a service account whose pull
// secret logs in to privateRegistry, and counts the reads.
func countingReader(t *testing.T, fail *atomic.Bool) (client.Reader, *atomic.Int64) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("puller:s3cret"))
	config, _ := json.Marshal(map[string]any{"auths": map[string]any{privateRegistry: map[string]string{"auth": auth}}})
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pull", Namespace: "team"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: config}},
	}
	var reads atomic.Int64
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			reads.Add(1)
			if fail != nil && fail.Load() {
				return errors.New("API server unavailable")
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
	return c, &reads
}

// login resolves kc for privateRegistry and returns the user name.
func login(t *testing.T, kc authn.Keychain) string {
	t.Helper()
	reg, err := name.NewRegistry(privateRegistry)
	if err != nil {
		t.Fatal(err)
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Username
}

func TestPullSecretsAreReadOncePerServiceAccount(t *testing.T) {
	reader, reads := countingReader(t, nil)
	var kcs keychains
	now := time.Now()
	kcs.now = func() time.Time { return now }
	pod := &corev1.PodSpec{ServiceAccountName: "app"}

	for i := 0; i < 5; i++ {
		if got := login(t, kcOnly(pullSecretKeychain(&kcs, reader, "team", pod))); got != "puller" {
			t.Fatalf("admission %d logged in as %q, want the service account's pull secret (puller)", i, got)
		}
	}
	if got := reads.Load(); got != 2 {
		t.Fatalf("5 admissions read %d objects, want 2 (the service account and its secret, once)", got)
	}

	// Another service account, or other imagePullSecrets, are other reads.
	login(t, kcOnly(pullSecretKeychain(&kcs, reader, "team", &corev1.PodSpec{})))
	login(t, kcOnly(pullSecretKeychain(&kcs, reader, "team", &corev1.PodSpec{ServiceAccountName: "app",
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}})))
	if got := reads.Load(); got != 5 {
		t.Fatalf("reads = %d, want 5 (default service account; app with its secret named twice)", got)
	}

	// After the TTL, the objects are read again.
	now = now.Add(pullSecretTTL)
	login(t, kcOnly(pullSecretKeychain(&kcs, reader, "team", pod)))
	if got := reads.Load(); got != 7 {
		t.Fatalf("reads after the TTL = %d, want 7", got)
	}
}

func TestPullSecretsFailedReadIsNotShared(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	reader, reads := countingReader(t, &fail)
	var kcs keychains
	pod := &corev1.PodSpec{ServiceAccountName: "app"}

	// The read fails: the admission goes on with Signet's own (here no)
	// credentials.
	if got := login(t, kcOnly(pullSecretKeychain(&kcs, reader, "team", pod))); got != "" {
		t.Fatalf("logged in as %q after a failed read, want anonymous", got)
	}
	fail.Store(false)
	if got := login(t, kcOnly(pullSecretKeychain(&kcs, reader, "team", pod))); got != "puller" {
		t.Fatalf("the admission after a failed read logged in as %q, want puller", got)
	}
	if got := reads.Load(); got != 3 {
		t.Fatalf("reads = %d, want 3 (the failed one, then the service account and its secret)", got)
	}
}

func kcOnly(kc authn.Keychain, _ string) authn.Keychain { return kc }

// TestPullSecretFingerprint: the credentials' fingerprint names the
// namespace, service account and pull secrets (never their contents), so
// the verdict cache keeps one namespace's failures from another; Signet's
// own credentials have none.
func TestPullSecretFingerprint(t *testing.T) {
	reader, reads := countingReader(t, nil)
	var kcs keychains
	id := func(ns string, spec *corev1.PodSpec) string {
		_, fp := pullSecretKeychain(&kcs, reader, ns, spec)
		return fp
	}
	app := &corev1.PodSpec{ServiceAccountName: "app"}
	withSecrets := &corev1.PodSpec{ServiceAccountName: "app", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "b"}, {Name: "a"}, {Name: "b"}}}
	sameSecrets := &corev1.PodSpec{ServiceAccountName: "app", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "a"}, {Name: "b"}}}
	first := id("team", app)
	if again := id("team", app); first != again || id("team", withSecrets) != id("team", sameSecrets) {
		t.Fatal("the same namespace, service account and secrets must have one fingerprint")
	}
	distinct := map[string]bool{id("team", app): true, id("other", app): true, id("team", &corev1.PodSpec{}): true, id("team", withSecrets): true}
	if len(distinct) != 4 {
		t.Fatalf("namespaces, service accounts and secrets must each change the fingerprint: %v", distinct)
	}
	if len(id("team", app)) != 32 {
		t.Fatalf("fingerprint %q, want 32 hex digits", id("team", app))
	}
	if _, fp := pullSecretKeychain(&kcs, nil, "team", app); fp != "" {
		t.Fatalf("Signet's own credentials: fingerprint %q, want none", fp)
	}
	if reads.Load() != 0 {
		t.Fatalf("fingerprinting read %d objects, want none (secrets are read when a registry needs them)", reads.Load())
	}
}
