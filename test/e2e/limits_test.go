package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/servers/registry"
)

// TestRefusedPullSecretsStayInTheirNamespace: a Pod whose imagePullSecrets
// the registry refuses is denied "registry denied access", and neither
// that verdict, cached, nor the verification in flight reaches another
// namespace: a Pod there of the same digest, whose pull secret reads the
// registry, is admitted, however often the first namespace tries.
func TestRefusedPullSecretsStayInTheirNamespace(t *testing.T) {
	localOnly(t, "its private registry runs in the test process, which an in-cluster webhook cannot reach")
	h := setup(t)
	ctx := context.Background()
	const user, pass = "victim", "s3cret-victim"
	reg := registry.New()
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer private.Close()
	host := strings.TrimPrefix(private.URL, "http://")

	img, _ := random.Image(64, 1)
	ref, _ := name.ParseReference(host + "/app:v1")
	if err := remote.Write(ref, img, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}))); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), dockerConfigJSON(host, user, pass), 0o600); err != nil {
		t.Fatal(err)
	}
	sign := exec.Command(filepath.Join(h.root, "bin", "cosign"), "sign", "--yes", "--tlog-upload=false", "--key", "awskms:///"+h.alias, host+"/app@"+digest.String())
	sign.Env = append(os.Environ(), "DOCKER_CONFIG="+dir)
	if out, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	policyName := fmt.Sprintf("e2e-tenants-%d", os.Getpid())
	h.policy(t, h.kmsPolicy(policyName, host+"/**", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)

	withSecret := func(ns, podName string, config []byte) *corev1.Pod {
		t.Helper()
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pull"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: config}}
		if _, err := h.cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		p := pod(podName, host+"/app@"+digest.String())
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
		return p
	}
	attacker := h.namespace(t, "", nil)
	victim := h.namespace(t, "", nil)

	hex := strings.TrimPrefix(digest.String(), "sha256:")
	want := h.denial(t, "pods", fmt.Sprintf(`image %s/app@%s (spec.containers[0].image) denied by ClusterImagePolicy %q: no valid signature from authority "ci-kms" (awskms:///%s): `+
		`registry %s denied access reading the sha256-%s.sig tag (HTTP 401): give Signet pull access to %s/app (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret. `+
		`This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.`, host, digest, policyName, h.alias, host, hex, host))
	for i := range 3 {
		_, err := h.cs.CoreV1().Pods(attacker).Create(ctx, withSecret(attacker, fmt.Sprintf("bogus-%d", i), dockerConfigJSON(host, user, "wrong")), metav1.CreateOptions{})
		if err == nil || err.Error() != want {
			t.Fatalf("attempt %d with a refused pull secret:\n got %v\nwant %s", i, err, want)
		}
	}
	if _, err := h.cs.CoreV1().Pods(victim).Create(ctx, withSecret(victim, "app", dockerConfigJSON(host, user, pass)), metav1.CreateOptions{}); err != nil {
		t.Fatalf("the other namespace's Pod of the same digest was denied: %v", err)
	}
}

// TestTooManyImagesAreRefusedWithoutRegistryTraffic: a Pod with 10,000 containers of
// distinct digests (server-side dry run) is refused at once with the
// limit's message, without one registry request.
func TestTooManyImagesAreRefusedWithoutRegistryTraffic(t *testing.T) {
	localOnly(t, "it counts requests on a registry in the test process")
	h := setup(t)
	ctx := context.Background()
	reg := registry.New()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	policyName := fmt.Sprintf("e2e-limits-%d", os.Getpid())
	h.policy(t, h.kmsPolicy(policyName, host+"/**", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)

	const n = 10000
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "wide"}}
	for i := range n {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: fmt.Sprintf("%s/app@sha256:%064x", host, i)})
	}
	begin := time.Now()
	_, err := h.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	took := time.Since(begin)
	want := h.denial(t, "pods", "the object names 10000 distinct images, more than the 256 Signet judges in one request (--max-images-per-request): split the workload, or ask your cluster admin to raise the limit")
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if got := reg.Requests(); len(got) != 0 {
		t.Fatalf("registry requests for a refused Pod: %v, want none", got)
	}
	// How fast is the load harness's to measure (docs/security.md); a
	// time bound here would only measure how loaded the machine is.
	t.Logf("10,000-container Pod refused in %s (API server round trip, dry run)", took)
}
