package cosign

import (
	"context"
	"maps"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/pkg/policy"
)

// requestID matches the request ID KMS errors carry, which differs per call.
var requestID = regexp.MustCompile(`\(request ID [0-9a-f-]+\)`)

func TestKMSUnreachableAtBuild(t *testing.T) {
	f := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	t.Setenv("AWS_ENDPOINT_URL_KMS", closed)
	cfg, err := awsclient.LoadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := NewKMSKeys(awsclient.NewKMSClients(cfg), KMSKeysOptions{})
	_, err = NewKMS(context.Background(), keys, "awskms:///alias/cosign", Options{Registry: f.reg})
	wantPrefix := "KMS GetPublicKey for awskms:///alias/cosign: operation error KMS: GetPublicKey, exceeded maximum number of attempts, 2,"
	if err == nil || !strings.HasPrefix(err.Error(), wantPrefix) || !strings.HasSuffix(err.Error(), "dial tcp "+strings.TrimPrefix(closed, "http://")+": connect: connection refused") {
		t.Fatalf("error = %v\nwant it to start %q and end with connection refused", err, wantPrefix)
	}
	// The failed load is not cached: once KMS answers, the key loads.
	t.Setenv("AWS_ENDPOINT_URL_KMS", f.kmsURL)
	key := f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	okCfg, _ := awsclient.LoadConfig(context.Background())
	keys = NewKMSKeys(awsclient.NewKMSClients(okCfg), KMSKeysOptions{})
	if _, err := NewKMS(context.Background(), keys, "awskms:///"+key, Options{Registry: f.reg}); err != nil {
		t.Fatal(err)
	}
}

func TestKMSKeyErrorsAtBuild(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ uri, want string }{
		{"awskms:///alias/does-not-exist",
			"KMS GetPublicKey for awskms:///alias/does-not-exist: NotFoundException: Alias arn:aws:kms:us-east-1:123456789012:alias/does-not-exist is not found. (request ID <id>)"},
		{"awskms://kms.example.com/alias/cosign",
			`"awskms://kms.example.com/alias/cosign" names the KMS endpoint "kms.example.com": Signet reads KMS only through the AWS SDK's configuration; write "awskms:///alias/cosign" and set AWS_ENDPOINT_URL_KMS if you need another endpoint`},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := NewKMS(context.Background(), f.keys, tc.uri, Options{Registry: f.reg})
			if err == nil || requestID.ReplaceAllString(err.Error(), "(request ID <id>)") != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
	t.Run("no-region", func(t *testing.T) {
		cfg := f.cfg.Copy()
		cfg.Region = ""
		keys := NewKMSKeys(awsclient.NewKMSClients(cfg), KMSKeysOptions{})
		_, err := NewKMS(context.Background(), keys, "awskms:///alias/cosign", Options{Registry: f.reg})
		want := "awskms:///alias/cosign names no region and the AWS configuration has none: set AWS_REGION or name the key by ARN"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %s", err, want)
		}
	})
}

// Every partition's ARN is read in its own region (the test server only
// knows the aws partition, so the others are not found there, but the
// request's SigV4 scope shows where it went).
func TestKMSARNRegionsAcrossPartitions(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ arn, region string }{
		{"arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "us-gov-west-1"},
		{"arn:aws-cn:kms:cn-north-1:123456789012:alias/cosign", "cn-north-1"},
		{"arn:aws:kms:ap-southeast-2:123456789012:alias/cosign", "ap-southeast-2"},
	} {
		_, err := NewKMS(context.Background(), f.keys, "awskms:///"+tc.arn, Options{Registry: f.reg})
		if err == nil || !strings.Contains(err.Error(), "NotFoundException") {
			t.Fatalf("%s: error = %v", tc.arn, err)
		}
		if got := f.lastKMSRegion(); got != tc.region {
			t.Fatalf("%s: GetPublicKey signed for %s, want %s", tc.arn, got, tc.region)
		}
	}
}

// Verifications make no KMS call of any kind, whatever their outcome.
func TestNoKMSCallsDuringVerification(t *testing.T) {
	f := newFixture(t)
	aliasURI := "awskms:///" + f.alias(f.createKey("us-east-1", kmstypes.KeySpecEccNistP256))
	otherKey := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	v, other := f.verifierFor(aliasURI), f.verifierFor(otherKey)
	signed, unsigned := f.pushImage(f.stack.Registry), f.pushImage(f.stack.ReferrersRegistry)
	f.sign(signed, aliasURI, formatLegacy)
	bundled := f.pushImage(f.stack.ReferrersRegistry)
	f.sign(bundled, aliasURI, formatBundle)

	before := f.kms.CallCounts()
	for range 5 {
		for _, c := range []struct {
			v      *Verifier
			d      string
			reason policy.Reason
		}{
			{v, signed.String(), policy.ReasonVerified},
			{v, bundled.String(), policy.ReasonVerified},
			{v, unsigned.String(), policy.ReasonNoSignature},
			{other, signed.String(), policy.ReasonInvalidSignature},
		} {
			if got := verifyImage(t, c.v, mustDigest(t, c.d)); got.Reason != c.reason {
				t.Fatalf("%s: %s %q", c.d, got.Reason, got.Cause)
			}
		}
	}
	if after := f.kms.CallCounts(); !maps.Equal(before, after) {
		t.Fatalf("KMS calls changed during verification: before %v, after %v", before, after)
	}
}

// An alias re-pointed to a new key (the pipeline rotated its key) is
// picked up after a failed verification, at most once a minute, and by the
// periodic refresh; from then on the old key's signatures do not verify.
func TestAliasRepointedIsPickedUp(t *testing.T) {
	f := newFixture(t)
	oldKey := f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	newKey := f.createKey("us-east-1", kmstypes.KeySpecEccNistP384)
	aliasName := f.alias(oldKey)
	uri := "awskms:///" + aliasName
	v := f.verifierFor(uri)
	oldID := v.Identity()

	oldSigned := f.pushImage(f.stack.Registry)
	f.sign(oldSigned, uri, formatLegacy)
	expectVerified(t, v, oldSigned)

	f.moveAlias(aliasName, newKey)
	newSigned := f.pushImage(f.stack.Registry)
	f.sign(newSigned, uri, formatBundle)
	calls := f.kms.Calls("GetPublicKey")

	// Within a minute of the last read: no refresh, no KMS call.
	got := verifyImage(t, v, newSigned)
	if got.Reason != policy.ReasonInvalidSignature {
		t.Fatalf("%s %q", got.Reason, got.Cause)
	}
	if f.kms.Calls("GetPublicKey") != calls {
		t.Fatal("a failure within MinRefreshGap called KMS")
	}

	// A minute later the failure triggers one refresh and the image verifies.
	f.clock.Advance(61 * time.Second)
	expectVerified(t, v, newSigned)
	if got := f.kms.Calls("GetPublicKey"); got != calls+1 {
		t.Fatalf("GetPublicKey calls = %d, want %d", got, calls+1)
	}
	if v.Identity() == oldID || !strings.Contains(v.Identity(), "schemes=ECDSA_SHA_384") {
		t.Fatalf("identity did not follow the key: %s", v.Identity())
	}
	// The old key is no longer trusted, and repeated failures stay free.
	for range 3 {
		if got := verifyImage(t, v, oldSigned); got.Reason != policy.ReasonInvalidSignature {
			t.Fatalf("old key's signature: %s %q", got.Reason, got.Cause)
		}
	}
	if got := f.kms.Calls("GetPublicKey"); got != calls+1 {
		t.Fatalf("GetPublicKey calls = %d, want %d", got, calls+1)
	}

	// The periodic refresh moves it back without any failure.
	f.moveAlias(aliasName, oldKey)
	f.keys.RefreshAll(context.Background())
	expectVerified(t, v, oldSigned)
}

func TestPeriodicRefreshLoop(t *testing.T) {
	f := newFixture(t)
	a, b := f.createKey("us-east-1", kmstypes.KeySpecEccNistP256), f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	aliasName := f.alias(a)
	keys := NewKMSKeys(awsclient.NewKMSClients(f.cfg), KMSKeysOptions{RefreshInterval: 20 * time.Millisecond})
	k, err := keys.Get(context.Background(), "awskms:///"+aliasName)
	if err != nil {
		t.Fatal(err)
	}
	before := k.Fingerprint()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- keys.Start(ctx) }()
	f.moveAlias(aliasName, b)
	deadline := time.Now().Add(5 * time.Second)
	for k.Fingerprint() == before {
		if time.Now().After(deadline) {
			t.Fatal("the refresh loop did not pick up the re-pointed alias")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A refresh that cannot reach KMS keeps the key; one that finds the key
// gone drops it, and verification then says so.
func TestRefreshFailures(t *testing.T) {
	f := newFixture(t)
	key := f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	aliasName := f.alias(key)
	uri := "awskms:///" + aliasName
	v := f.verifierFor(uri)
	d := f.pushImage(f.stack.Registry)
	f.sign(d, uri, formatLegacy)

	// KMS unreachable: the last good key stays in use.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String()
	l.Close()
	k, _ := f.keys.Get(context.Background(), uri)
	k.client = kms.NewFromConfig(f.cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(closed) })
	if _, err := k.Refresh(context.Background()); err == nil {
		t.Fatal("refresh against a closed port succeeded")
	}
	expectVerified(t, v, d)
	if k.Err() == nil || !strings.Contains(k.Err().Error(), "connection refused") {
		t.Fatalf("Err() = %v, want the refresh error", k.Err())
	}

	// The alias deleted: the key is gone.
	k.client = kms.NewFromConfig(f.cfg)
	if _, err := f.api.DeleteAlias(context.Background(), &kms.DeleteAliasInput{AliasName: aws.String(aliasName)}); err != nil {
		t.Fatal(err)
	}
	f.keys.RefreshAll(context.Background())
	got := verifyImage(t, v, d)
	got.Cause = requestID.ReplaceAllString(got.Cause, "(request ID <id>)")
	expect(t, got, policy.ReasonKeyUnavailable,
		"key unavailable: KMS GetPublicKey for "+uri+": NotFoundException: Alias arn:aws:kms:us-east-1:123456789012:"+aliasName+" is not found. (request ID <id>)")
	if !strings.HasPrefix(v.Identity(), "cosign;unavailable;") {
		t.Fatalf("identity %s", v.Identity())
	}

	// Restored: the next refresh brings it back.
	if _, err := f.api.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(aliasName), TargetKeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	f.keys.RefreshAll(context.Background())
	expectVerified(t, v, d)
}

func expectVerified(t *testing.T, v *Verifier, d interface{ String() string }) {
	t.Helper()
	if got := verifyImage(t, v, mustDigest(t, d.String())); !got.Verified() {
		t.Fatalf("%s: %s %q", d, got.Reason, got.Cause)
	}
}

// TestLazyKeyIsReadForASignatureOnly: a Lazy key is not read when a
// policy names it, nor for an image with no signature; the first
// signature to check reads it, once, and later ones use it from memory.
func TestLazyKeyIsReadForASignatureOnly(t *testing.T) {
	f := newFixture(t)
	uri := "awskms:///" + f.createKey("us-east-1", kmstypes.KeySpecEccNistP256)
	fr := newFaultyRegistry(t)
	signed, other, unsigned := f.pushImage(fr.host), f.pushImage(fr.host), f.pushImage(fr.host)
	f.sign(signed, uri, formatLegacy)
	f.sign(other, uri, formatLegacy)
	kmsCalls := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.sigv4At)
	}

	keys := NewKMSKeys(awsclient.NewKMSClients(f.cfg), KMSKeysOptions{Lazy: true})
	before := kmsCalls()
	v, err := NewKMS(context.Background(), keys, uri, Options{Registry: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	if n := kmsCalls() - before; n != 0 {
		t.Fatalf("building the verifier made %d KMS calls, want 0", n)
	}
	expect(t, verifyImage(t, v, unsigned), policy.ReasonNoSignature, "no signature found")
	if n := kmsCalls() - before; n != 0 {
		t.Fatalf("verifying an unsigned image made %d KMS calls, want 0", n)
	}
	expectVerified(t, v, signed)
	expectVerified(t, v, other)
	if n := kmsCalls() - before; n != 1 {
		t.Fatalf("verifying two signed images made %d KMS calls, want 1", n)
	}
}
