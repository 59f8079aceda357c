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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/api/v1alpha1"
	"github.com/signet-dev/signet/pkg/policy/verify"
	"github.com/signet-dev/signet/test/fixtures"
	"github.com/signet-dev/signet/test/leak"
	"github.com/signet-dev/signet/test/servers/registry"
)

// cosignKey makes an ECDSA key as `cosign import-key-pair` stores it and
// returns the private key file and the PEM public key.
func cosignKey(t *testing.T) (string, string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "import.key")
	if err := os.WriteFile(in, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	kb, err := cosign.ImportKeyPair(in, func(bool) ([]byte, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cosign.key")
	if err := os.WriteFile(out, kb.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return out, string(kb.PublicBytes)
}

// hostileRegistries start one registry per hostile behaviour and return
// an image reference on each, and a func that stops them all.
func hostileRegistries(t *testing.T) (map[string]string, func()) {
	t.Helper()
	subject := digest.FromString("the image")
	var stops []func()
	images := map[string]string{}
	add := func(name, host string) { images[name] = host + "/hostile/app@" + subject.String() }
	serve := func(name string, h http.Handler) {
		s := httptest.NewServer(h)
		stops = append(stops, s.Close)
		add(name, strings.TrimPrefix(s.URL, "http://"))
	}
	serve("one byte per second", registry.Trickle(time.Second))
	serve("redirect loop", registry.RedirectLoop())
	serve("Content-Length of 10 GiB", registry.HugeContentLength(10<<30))
	serve("compressed body expanding without bound", registry.GzipBomb())
	big := registry.NewContent()
	var sb strings.Builder
	sb.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
	for i := range 100_000 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","size":700,"digest":"` + digest.FromString(string(rune(i))).String() + `"}`)
	}
	sb.WriteString("]}")
	big.Referrers[subject.String()] = []byte(sb.String())
	serve("referrers index with 100,000 entries", registry.NewStatic(big))
	self := registry.NewContent()
	self.Referrers[subject.String()] = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","size":100,"digest":"` + subject.String() + `"}]}`)
	self.Manifests[subject.String()] = registry.Manifest{MediaType: "application/vnd.oci.image.index.v1+json", Body: self.Referrers[subject.String()]}
	serve("index that lists itself", registry.NewStatic(self))
	mismatch := registry.NewContent()
	mismatch.Manifests["sha256-"+subject.Encoded()+".sig"] = registry.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json", Body: []byte(`{"schemaVersion":2}`), Digest: digest.FromString("another").String()}
	serve("manifest whose digest does not match its content", registry.NewStatic(mismatch))
	silent, err := registry.NewSilent()
	if err != nil {
		t.Fatal(err)
	}
	stops = append(stops, silent.Close)
	add("accepts the connection and never answers", silent.Addr())
	return images, func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// TestEngineSurvivesHostileRegistries: while every hostile registry is
// being asked, again and again, an ordinary stream of admissions (a signed
// image, allowed; an unsigned one, denied) through the engine and the real
// cosign verifier, on the same shared registry client, gets every answer
// right and within its budget; the hostile ones are denied within theirs;
// nothing is left running.
func TestEngineSurvivesHostileRegistries(t *testing.T) {
	const budget = 3 * time.Second
	ctx := context.Background()
	vs, err := verify.New(ctx, verify.Config{})
	if err != nil {
		t.Fatal(err)
	}
	settled := leak.Check(t)

	good := httptest.NewServer(registry.New())
	host := strings.TrimPrefix(good.URL, "http://")
	keyFile, pub := cosignKey(t)
	signedDigest, err := fixtures.PushRandom(host + "/ordinary/app:signed")
	if err != nil {
		t.Fatal(err)
	}
	signed := host + "/ordinary/app@" + signedDigest
	ko := options.KeyOpts{KeyRef: keyFile, SkipConfirmation: true, PassFunc: func(bool) ([]byte, error) { return nil, nil }}
	if err := sign.SignCmd(&options.RootOptions{Timeout: time.Minute}, ko, options.SignOptions{Upload: true, SkipConfirmation: true}, []string{signed}); err != nil {
		t.Fatal(err)
	}
	unsignedDigest, err := fixtures.PushRandom(host + "/ordinary/app:unsigned")
	if err != nil {
		t.Fatal(err)
	}
	unsigned := host + "/ordinary/app@" + unsignedDigest
	hostile, stopHostile := hostileRegistries(t)

	cip := &v1alpha1.ClusterImagePolicy{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: v1alpha1.ClusterImagePolicySpec{
		Images:      []v1alpha1.ImageGlob{{Glob: "**"}},
		Authorities: []v1alpha1.Authority{{Name: "ci", Key: &v1alpha1.KeyAuthority{Data: pub}}},
	}}
	p, errs := policy.Compile(ctx, cip, vs.Factory(), nil)
	if len(errs) > 0 || p.NotReady != nil {
		t.Fatalf("compile: %v %v", errs, p.NotReady)
	}
	policies := []*policy.Policy{p}
	// admit decides one image as a fresh admission would on a cold cache:
	// every decision reads the registry; shared verifications end with
	// WorkTimeout, after their callers gave up.
	admit := func(img string) (policy.Decision, time.Duration) {
		e := &policy.Engine{Cache: policy.NewVerdictCache(policy.CacheOptions{WorkTimeout: budget}), Resolver: vs.Registry, NoMatch: policy.NoMatchDeny}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		begin := time.Now()
		d := e.Evaluate(ctx, policies, policy.Request{Images: []policy.ImageRef{{Path: "spec.containers[0].image", Ref: img}}})
		return d, time.Since(begin)
	}
	// The answers when nothing else is going on.
	if d, _ := admit(signed); !d.Allowed() {
		t.Fatalf("signed image denied: %v", d.Denials())
	}
	quiet, _ := admit(unsigned)
	wantDenial := `image ` + unsigned + ` (spec.containers[0].image) denied by ClusterImagePolicy "prod": no valid signature from authority "ci" (` + p.Authorities[0].Verifier.Describe() + `): no signature found. Sign this digest in your pipeline with one of the policy's authorities.`
	if got := quiet.Denials(); len(got) != 1 || got[0] != wantDenial {
		t.Fatalf("unsigned image: %q\nwant %q", got, wantDenial)
	}

	done := make(chan struct{})
	var hostileWG sync.WaitGroup
	var mu sync.Mutex
	hostileAnswers := map[string]int{}
	for name, img := range hostile {
		hostileWG.Add(1)
		go func() {
			defer hostileWG.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				d, took := admit(img)
				if d.Allowed() || len(d.Denials()) != 1 {
					t.Errorf("%s: allowed %v, denials %q", name, d.Allowed(), d.Denials())
				}
				if took > budget+time.Second {
					t.Errorf("%s: answered after %s (budget %s)", name, took, budget)
				}
				mu.Lock()
				hostileAnswers[name]++
				mu.Unlock()
			}
		}()
	}

	// Each stream admits at least perStream images, and goes on until every
	// hostile registry has been answered twice: the slow ones take a budget.
	const streams, perStream = 4, 15
	answeredTwice := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for name := range hostile {
			if hostileAnswers[name] < 2 {
				return false
			}
		}
		return true
	}
	begin := time.Now()
	var ordinary int
	var ordinaryWG sync.WaitGroup
	var slowest time.Duration
	for s := range streams {
		ordinaryWG.Add(1)
		go func() {
			defer ordinaryWG.Done()
			for i := 0; i < perStream || !answeredTwice(); i++ {
				if time.Since(begin) > 10*budget {
					t.Error("hostile registries not answered twice in ten budgets")
					return
				}
				img := signed
				if (s+i)%2 == 1 {
					img = unsigned
				}
				d, took := admit(img)
				mu.Lock()
				slowest = max(slowest, took)
				ordinary++
				mu.Unlock()
				switch {
				case took > budget:
					t.Errorf("ordinary admission of %s answered after %s (budget %s)", img, took, budget)
				case img == signed && !d.Allowed():
					t.Errorf("signed image denied while hostile registries were asked: %q", d.Denials())
				case img == unsigned && (len(d.Denials()) != 1 || d.Denials()[0] != wantDenial):
					t.Errorf("unsigned image: %q\nwant %q", d.Denials(), wantDenial)
				}
			}
		}()
	}
	ordinaryWG.Wait()
	close(done)
	hostileWG.Wait()
	t.Logf("%d ordinary admissions in %s, slowest %s; hostile admissions answered: %v", ordinary, time.Since(begin).Round(time.Millisecond), slowest.Round(time.Millisecond), hostileAnswers)
	for name := range hostile {
		if hostileAnswers[name] == 0 {
			t.Errorf("%s was never answered", name)
		}
	}
	stopHostile()
	good.Close()
	t.Logf("goroutines settled %s after the registries stopped", settled().Round(time.Millisecond))
}
