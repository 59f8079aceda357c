package awsclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseECRHost(t *testing.T) {
	for host, want := range map[string]*ECRRegistry{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com":          {Account: "123456789012", Region: "us-east-1"},
		"123456789012.dkr.ecr.us-east-1.amazonaws.com:443":      {Account: "123456789012", Region: "us-east-1"},
		"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com": {Account: "123456789012", Region: "us-gov-west-1", FIPS: true},
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":      {Account: "123456789012", Region: "cn-north-1"},
		"123456789012.dkr-ecr.eu-west-1.on.aws":                 {Account: "123456789012", Region: "eu-west-1"},
		"123456789012.dkr-ecr-fips.us-east-1.on.aws":            {Account: "123456789012", Region: "us-east-1", FIPS: true},
		"123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM":          {Account: "123456789012", Region: "us-east-1"},
		"public.ecr.aws":  nil,
		"index.docker.io": nil,
		"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.test": nil,
		"evil.test/123456789012.dkr.ecr.us-east-1.amazonaws.com": nil,
		"12345.dkr.ecr.us-east-1.amazonaws.com":                  nil,
	} {
		got, ok := ParseECRHost(host)
		if (want == nil) == ok || (want != nil && got != *want) {
			t.Errorf("ParseECRHost(%q) = %+v, %v; want %+v", host, got, ok, want)
		}
	}
}

// ecrServer speaks ECR's JSON protocol for GetAuthorizationToken, counts
// calls and records the region each request was signed for.
type ecrServer struct {
	calls   atomic.Int32
	fail    atomic.Bool
	delay   time.Duration
	expires atomic.Int64 // unix seconds

	mu      sync.Mutex
	regions []string
}

var scope = regexp.MustCompile(`Credential=[^/]+/\d{8}/([a-z0-9-]+)/ecr/aws4_request`)

func (s *ecrServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
		http.Error(w, "unexpected operation", http.StatusBadRequest)
		return
	}
	s.calls.Add(1)
	if m := scope.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		s.mu.Lock()
		s.regions = append(s.regions, m[1])
		s.mu.Unlock()
	}
	time.Sleep(s.delay)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if s.fail.Load() {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"__type": "ServerException", "message": "ECR is down"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:token-" + string('a'+s.calls.Load()))),
		"expiresAt":          float64(s.expires.Load()),
		"proxyEndpoint":      "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
	}}})
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newTestKeychain(t *testing.T, s *ecrServer, c *clock) *ECRKeychain {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		// One attempt: the failure cases need no retry backoff.
		RetryMaxAttempts: 1,
	}
	return NewECRKeychain(cfg, ECRKeychainOptions{Now: c.Now})
}

func resolve(t *testing.T, kc authn.Keychain, image string) authn.AuthConfig {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	a, err := authn.Resolve(context.Background(), kc, ref.Context())
	if err != nil {
		t.Fatalf("resolving %s: %v", image, err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return *cfg
}

func TestECRKeychainCachesUntilShortlyBeforeExpiry(t *testing.T) {
	c := &clock{now: time.Now()}
	s := &ecrServer{delay: 50 * time.Millisecond}
	s.expires.Store(c.Now().Add(12 * time.Hour).Unix())
	kc := newTestKeychain(t, s, c)
	const image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1"

	// Concurrent first requests share one call.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if got := resolve(t, kc, image); got.Username != "AWS" || got.Password != "token-b" {
				t.Errorf("credentials = %+v", got)
			}
		})
	}
	wg.Wait()
	if s.calls.Load() != 1 {
		t.Fatalf("GetAuthorizationToken calls = %d, want 1", s.calls.Load())
	}
	s.mu.Lock()
	region := s.regions[0]
	s.mu.Unlock()
	if region != "eu-west-1" {
		t.Fatalf("token requested in %s, want the registry's region eu-west-1", region)
	}

	// Cached for the token's life minus the margin.
	c.Advance(11*time.Hour + 40*time.Minute)
	resolve(t, kc, image)
	if s.calls.Load() != 1 {
		t.Fatalf("calls = %d, want the cached token", s.calls.Load())
	}
	c.Advance(10 * time.Minute) // 11h50m: inside the 15-minute margin
	s.expires.Store(c.Now().Add(12 * time.Hour).Unix())
	if got := resolve(t, kc, image); got.Password != "token-c" || s.calls.Load() != 2 {
		t.Fatalf("credentials %+v after %d calls, want a renewed token", got, s.calls.Load())
	}

	// A failed renewal falls back to the still-valid token.
	c.Advance(11*time.Hour + 50*time.Minute)
	s.fail.Store(true)
	if got := resolve(t, kc, image); got.Password != "token-c" {
		t.Fatalf("credentials %+v, want the cached token while ECR is down", got)
	}
	// Once it expired, the error surfaces.
	c.Advance(20 * time.Minute)
	ref, _ := name.ParseReference(image)
	if _, err := authn.Resolve(context.Background(), kc, ref.Context()); err == nil {
		t.Fatal("an expired token was used while ECR is down")
	}
}

func TestDefaultKeychainLeavesOtherRegistriesAlone(t *testing.T) {
	c := &clock{now: time.Now()}
	s := &ecrServer{}
	s.expires.Store(c.Now().Add(12 * time.Hour).Unix())
	kc := DefaultKeychain(newTestKeychain(t, s, c))
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // an empty docker config
	if got := resolve(t, kc, "registry.example.com/app:1"); got != (authn.AuthConfig{}) {
		t.Fatalf("credentials for a non-ECR registry: %+v", got)
	}
	if s.calls.Load() != 0 {
		t.Fatal("ECR was called for a non-ECR registry")
	}
	if got := resolve(t, kc, "123456789012.dkr.ecr.us-west-2.amazonaws.com/app:1"); got.Username != "AWS" {
		t.Fatalf("credentials for ECR: %+v", got)
	}
}

// TestECRRegionsAreValidatedAndBounded: the region comes from the image
// host, which the Pod's author writes: a malformed one is not ECR (no
// client, no call), and however many well-formed regions images name, at
// most maxECRRegions clients and tokens are kept.
func TestECRRegionsAreValidatedAndBounded(t *testing.T) {
	c := &clock{now: time.Now()}
	s := &ecrServer{}
	s.expires.Store(c.Now().Add(12 * time.Hour).Unix())
	kc := newTestKeychain(t, s, c)

	for _, host := range []string{
		"123456789012.dkr.ecr.not-a-region.amazonaws.com",
		"123456789012.dkr.ecr.us-east-1-.amazonaws.com",
		"123456789012.dkr.ecr.x-1.amazonaws.com",
		"123456789012.dkr.ecr.us--east-1.amazonaws.com",
		"123456789012.dkr.ecr.us-east-100.amazonaws.com",
	} {
		if reg, ok := ParseECRHost(host); ok {
			t.Errorf("ParseECRHost(%q) = %+v, want not ECR (malformed region)", host, reg)
		}
		if got := resolve(t, kc, host+"/app:1"); got != (authn.AuthConfig{}) {
			t.Errorf("%s: credentials %+v, want anonymous", host, got)
		}
	}
	if n := s.calls.Load(); n != 0 {
		t.Fatalf("%d GetAuthorizationToken calls for malformed regions, want 0", n)
	}

	const regions = maxECRRegions + 8
	for i := range regions {
		if got := resolve(t, kc, fmt.Sprintf("123456789012.dkr.ecr.xx-test%c-%d.amazonaws.com/app:1", 'a'+i/10, i%10)); got.Username != "AWS" {
			t.Fatalf("region %d: credentials %+v", i, got)
		}
	}
	kc.mu.Lock()
	tokens := len(kc.tokens)
	kc.mu.Unlock()
	if n := s.calls.Load(); n != regions || kc.clients.Len() > maxECRRegions || tokens > maxECRRegions {
		t.Fatalf("%d calls, %d clients, %d tokens kept; want %d calls and at most %d of each", n, kc.clients.Len(), tokens, regions, maxECRRegions)
	}
}
