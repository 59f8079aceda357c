package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/test/servers/registry"
)

// TestPullSecretsFeedRegistryCredentials: a registry that requires a login
// is read with the Pod's imagePullSecrets (or its service account's).
func TestPullSecretsFeedRegistryCredentials(t *testing.T) {
	localOnly(t, "its private registry runs in the test process, which an in-cluster webhook cannot reach")
	h := setup(t)
	ctx := context.Background()
	const user, pass = "puller", "s3cret-pull"
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
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})

	// Push and sign with the credentials (cosign reads them from a docker config).
	img, _ := random.Image(64, 1)
	ref, _ := name.ParseReference(host + "/app:v1")
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	dockerConfig := dockerConfigJSON(host, user, pass)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), dockerConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	sign := exec.Command(filepath.Join(h.root, "bin", "cosign"), "sign", "--yes", "--tlog-upload=false", "--key", "awskms:///"+h.alias, host+"/app@"+digest.String())
	sign.Env = append(os.Environ(), "DOCKER_CONFIG="+dir)
	if out, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	h.policy(t, h.kmsPolicy("e2e-private", host+"/**", h.alias, v1alpha1.ModeEnforce), metav1.ConditionTrue)
	ns := h.namespace(t, "", nil)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
	}
	if _, err := h.cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("without pull secrets the registry refuses Signet", func(t *testing.T) {
		_, err := h.cs.CoreV1().Pods(ns).Create(ctx, pod("anon", host+"/app:v1"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.HasSuffix(err.Error(), "Check that the image exists and that the Pod's imagePullSecrets (or Signet's own registry credentials) can read it.") {
			t.Fatalf("got: %v", err)
		}
	})
	t.Run("the pod's imagePullSecrets", func(t *testing.T) {
		p := pod("with-secret", host+"/app:v1")
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
		if _, err := h.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("denied: %v", err)
		}
	})
	t.Run("the service account's imagePullSecrets", func(t *testing.T) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "puller"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}}
		if _, err := h.cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := pod("with-sa", host+"/app@"+digest.String())
		p.Spec.ServiceAccountName = "puller"
		p.Spec.AutomountServiceAccountToken = new(bool)
		if _, err := h.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("denied: %v", err)
		}
	})
}

func dockerConfigJSON(host, user, pass string) []byte {
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%s:%s", user, pass)))},
	}})
	return b
}
