package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify/cosign"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/servers/registry"
)

// login is a keychain holding one user's password for every registry.
type login struct{ user, password string }

func (l login) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: l.user, Password: l.password}), nil
}

// privateRegistry is the stack's registry behind basic auth: only the
// users in passwords may read it.
func privateRegistry(t *testing.T, passwords map[string]string) string {
	t.Helper()
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || passwords[user] == "" || passwords[user] != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// engine is a real cosign verifier (a PEM key nothing was signed with)
// over a real registry client whose own credentials are own, behind one
// Enforce policy for host.
func engine(t *testing.T, host string, own authn.Keychain) (*policy.Engine, []*policy.Policy, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	client := oci.New(oci.Options{Keychain: own})
	v, err := cosign.NewPEM("", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), cosign.Options{Registry: client})
	if err != nil {
		t.Fatal(err)
	}
	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Mode: v1alpha1.ModeEnforce, Images: []v1alpha1.ImageGlob{{Glob: host + "/**"}},
		Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{Data: "(test key)"}}},
	}}
	p, errs := policy.Compile(context.Background(), cip, func(context.Context, v1alpha1.Authority, []byte) (policy.Verifier, error) { return v, nil }, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return &policy.Engine{Cache: policy.NewVerdictCache(policy.CacheOptions{}), Resolver: client}, []*policy.Policy{p}, v.Describe()
}

func push(t *testing.T, host string, as login) string {
	t.Helper()
	d, err := fixtures.PushRandom(host+"/app:v1", remote.WithAuth(&authn.Basic{Username: as.user, Password: as.password}))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func judge(e *policy.Engine, policies []*policy.Policy, image string, kc authn.Keychain, kcID string) string {
	d := e.Evaluate(context.Background(), policies, policy.Request{
		Images: []policy.ImageRef{{Path: "spec.containers[0].image", Ref: image}}, Keychain: kc, KeychainID: kcID,
	})
	return strings.Join(d.Denials(), "\n")
}

// TestRefusedPullSecretDoesNotDenyOtherNamespaces: a Pod with bogus pull
// secrets is told the registry denied access, and that answer, cached and
// shared, must not reach another namespace's Pod of the same digest, whose
// own pull secret reads the registry.
func TestRefusedPullSecretDoesNotDenyOtherNamespaces(t *testing.T) {
	victim := login{"victim", "good"}
	host := privateRegistry(t, map[string]string{victim.user: victim.password})
	digest := push(t, host, victim)
	e, policies, key := engine(t, host, nil) // Signet itself has no credentials here
	image := host + "/app@" + digest

	got := judge(e, policies, image, login{"attacker", "bogus"}, "attacker")
	want := `image ` + image + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature from authority "ci" (` + key + `): registry ` + host +
		` denied access reading the sha256-` + strings.TrimPrefix(digest, "sha256:") + `.sig tag (HTTP 401): give Signet pull access to ` + host + `/app (on ECR: ecr:BatchGetImage and ecr:GetDownloadUrlForLayer for its role) or add an imagePullSecret. This is a transient failure: retry; if it persists, check that Signet can reach the registry and AWS.`
	if got != want {
		t.Fatalf("attacker's Pod:\n got %s\nwant %s", got, want)
	}
	// Twice, as the attacker would, to keep a cached denial alive.
	judge(e, policies, image, login{"attacker", "bogus"}, "attacker")

	got = judge(e, policies, image, victim, "victim")
	want = `image ` + image + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature from authority "ci" (` + key + `): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`
	if got != want {
		t.Fatalf("victim's Pod, judged with its own credentials:\n got %s\nwant %s", got, want)
	}
}

// TestRefusedPullSecretFallsBackToSignetsCredentials: an expired pull
// secret is refused (401), and Signet's own credentials, which can read
// the repository, decide instead, for the tag's resolution and for the
// signatures.
func TestRefusedPullSecretFallsBackToSignetsCredentials(t *testing.T) {
	signet := login{"signet", "own"}
	host := privateRegistry(t, map[string]string{signet.user: signet.password})
	digest := push(t, host, signet)
	e, policies, key := engine(t, host, signet)

	got := judge(e, policies, host+"/app:v1", login{"team", "expired"}, "team")
	want := `image ` + host + `/app:v1@` + digest + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature from authority "ci" (` + key + `): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`
	if got != want {
		t.Fatalf("Pod with an expired pull secret:\n got %s\nwant %s", got, want)
	}
}
