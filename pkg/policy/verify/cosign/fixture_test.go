package cosign

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/pkg/policy"
	kmsserver "github.com/signet-dev/signet/test/servers/kms"
	"github.com/signet-dev/signet/test/stack"
)

// fixture is one test's world: the stack's two registries, and KMS test
// servers (test/servers/kms) run in-process on 127.0.0.1, one per region,
// behind one endpoint that AWS_ENDPOINT_URL_KMS points at. The AWS SDK
// finds it through its default chain, as in production; cosign's signer
// (library and CLI) finds it the same way.
type fixture struct {
	t      *testing.T
	stack  *stack.Env
	kmsURL string
	// kms is the us-east-1 server (account 123456789012); others by region.
	kms     *kmsserver.Server
	regions map[string]*kmsserver.Server
	api     *kms.Client
	cfg     aws.Config
	clock   *fakeClock
	keys    *KMSKeys
	reg     *oci.Client
	repo    string

	mu      sync.Mutex
	sigv4At []string // the region of every KMS request, from its SigV4 scope
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, stack: stack.Load(t), clock: &fakeClock{now: time.Now()}}
	f.kms = kmsserver.New(kmsserver.Options{Region: "us-east-1", Account: "123456789012"})
	f.regions = map[string]*kmsserver.Server{
		"us-east-1": f.kms,
		"eu-west-1": kmsserver.New(kmsserver.Options{Region: "eu-west-1", Account: "210987654321"}),
	}
	srv := httptest.NewServer(http.HandlerFunc(f.routeKMS))
	t.Cleanup(srv.Close)
	f.kmsURL = srv.URL
	t.Setenv("AWS_ENDPOINT_URL_KMS", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")

	cfg, err := awsclient.LoadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.api = kms.NewFromConfig(cfg)
	f.keys = NewKMSKeys(awsclient.NewKMSClients(cfg), KMSKeysOptions{Now: f.clock.Now})
	f.reg = oci.New(oci.Options{})
	f.repo = "cosign-test/" + strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")) + "-" + randHex(4)
	return f
}

var sigv4Region = regexp.MustCompile(`Credential=[^/]+/\d{8}/([a-z0-9-]+)/kms/aws4_request`)

// routeKMS sends each request to the server of the region it was signed
// for, as AWS's regional endpoints would, and records that region.
func (f *fixture) routeKMS(w http.ResponseWriter, r *http.Request) {
	region := "us-east-1"
	if m := sigv4Region.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		region = m[1]
		f.mu.Lock()
		f.sigv4At = append(f.sigv4At, region)
		f.mu.Unlock()
	}
	s, ok := f.regions[region]
	if !ok {
		s = f.kms
	}
	s.ServeHTTP(w, r)
}

func (f *fixture) lastKMSRegion() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sigv4At) == 0 {
		return ""
	}
	return f.sigv4At[len(f.sigv4At)-1]
}

// createKey makes a signing key in region's server and returns its ARN.
func (f *fixture) createKey(region string, spec kmstypes.KeySpec) string {
	f.t.Helper()
	out, err := f.api.CreateKey(context.Background(), &kms.CreateKeyInput{KeySpec: spec, KeyUsage: kmstypes.KeyUsageTypeSignVerify},
		func(o *kms.Options) { o.Region = region })
	if err != nil {
		f.t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// alias points alias/NAME (a fresh name) at key and returns the name.
func (f *fixture) alias(key string) string {
	f.t.Helper()
	aliasName := "alias/signet-" + randHex(6)
	if _, err := f.api.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(aliasName), TargetKeyId: aws.String(key)}); err != nil {
		f.t.Fatalf("CreateAlias: %v", err)
	}
	return aliasName
}

func (f *fixture) moveAlias(aliasName, key string) {
	f.t.Helper()
	if _, err := f.api.UpdateAlias(context.Background(), &kms.UpdateAliasInput{AliasName: aws.String(aliasName), TargetKeyId: aws.String(key)}); err != nil {
		f.t.Fatalf("UpdateAlias: %v", err)
	}
}

// pushImage pushes a random image into registry and returns its digest.
func (f *fixture) pushImage(registry string) name.Digest {
	f.t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		f.t.Fatal(err)
	}
	ref, err := name.ParseReference(registry + "/" + f.repo + ":" + randHex(4))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		f.t.Fatalf("pushing %s: %v", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		f.t.Fatal(err)
	}
	return ref.Context().Digest(h.String())
}

// signFormat is how a signature is stored.
type signFormat string

const (
	formatLegacy    signFormat = "legacy"     // sha256-<hex>.sig tag (cosign v2 default)
	formatReferrers signFormat = "oci-1-1"    // --registry-referrers-mode=oci-1-1
	formatBundle    signFormat = "new-bundle" // --new-bundle-format (cosign v3 default)
)

// sign signs d with keyRef through the cosign library code path `cosign
// sign` runs (SignCmd), with no transparency-log upload.
func (f *fixture) sign(d name.Digest, keyRef string, format signFormat) {
	f.t.Helper()
	so := options.SignOptions{
		Upload:           true,
		TlogUpload:       false,
		SkipConfirmation: true,
		NewBundleFormat:  format == formatBundle,
	}
	if format == formatReferrers {
		so.RegistryExperimental.RegistryReferrersMode = options.RegistryReferrersModeOCI11
	}
	ko := options.KeyOpts{KeyRef: keyRef, SkipConfirmation: true, PassFunc: func(bool) ([]byte, error) { return nil, nil }}
	if err := sign.SignCmd(&options.RootOptions{Timeout: time.Minute}, ko, so, []string{d.String()}); err != nil {
		f.t.Fatalf("cosign sign (%s) %s with %s: %v", format, d, keyRef, err)
	}
}

// verifierFor builds the KMS verifier for uri.
func (f *fixture) verifierFor(uri string) *Verifier {
	f.t.Helper()
	v, err := NewKMS(context.Background(), f.keys, uri, Options{Registry: f.reg})
	if err != nil {
		f.t.Fatalf("NewKMS(%s): %v", uri, err)
	}
	return v
}

func verifyImage(t *testing.T, v policy.Verifier, d name.Digest) policy.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return v.Verify(ctx, policy.Image{Ref: d})
}

// expect checks a result's reason and exact cause.
func expect(t *testing.T, got policy.Result, reason policy.Reason, cause string) {
	t.Helper()
	if got.Reason != reason || got.Cause != cause {
		t.Fatalf("result = %s %q\nwant     %s %q", got.Reason, got.Cause, reason, cause)
	}
}

// sigTag is "the sha256-<hex>.sig tag" for d, as causes name it.
func sigTag(d name.Digest) string {
	return "the " + strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig tag"
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
