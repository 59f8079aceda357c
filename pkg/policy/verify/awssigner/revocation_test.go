package awssigner_test

import (
	"context"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/awsclient"
	"github.com/signet-dev/signet/pkg/policy"
	"github.com/signet-dev/signet/pkg/policy/verify/awssigner"
)

// tbsHash is hex(SHA-384(TBS certificate)), computed here independently of
// the package: half of AWS Signer's certificate identifier.
func tbsHash(c *x509.Certificate) string {
	sum := sha512.Sum384(c.RawTBSCertificate)
	return hex.EncodeToString(sum[:])
}

// TestRevocationRequest checks what reaches AWS Signer, as the real SDK
// client sends it through AWS_ENDPOINT_URL_SIGNER: the configured host
// (no endpoint host prefix), the profile's region, and the parameters of
// GetRevocationStatus.
func TestRevocationRequest(t *testing.T) {
	f := setup(t)
	ref, _ := f.image(t, f.stack.ReferrersRegistry)
	a := attrs(versionARN)
	a.SigningTime = time.Now().Add(-time.Minute)
	f.sign(t, ref, f.commercial, jwsType, a, referrersAPI)
	got := verify(t, f.verifier(t, f.checker(t, 0), awssigner.RevocationEnforce, profileARN), ref)
	expect(t, got, policy.ReasonVerified, "", versionARN)

	reqs := f.signer.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests reached Signer, want 1", len(reqs))
	}
	r := reqs[0]
	endpoint, err := url.Parse(f.signerURL)
	if err != nil {
		t.Fatal(err)
	}
	certs := f.commercial.Certs
	wantHashes := []string{
		tbsHash(certs[0]) + tbsHash(certs[1]),
		tbsHash(certs[1]) + tbsHash(certs[2]),
		tbsHash(certs[2]) + tbsHash(certs[2]), // the root is its own issuer
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"host", r.Host, endpoint.Host},
		{"region", r.Region, "us-west-2"},
		{"service", r.Service, "signer"},
		{"profileVersionArn", r.ProfileVersionARN, versionARN},
		{"jobArn", r.JobARN, a.JobARN},
		{"platformId", r.PlatformID, "Notation-OCI-SHA384-ECDSA"},
		{"signatureTimestamp", r.SignatureTimestamp.UTC(), a.SigningTime.Truncate(time.Second).UTC()},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// The SDK's SigV4 signer puts query values in canonical (sorted) order:
	// AWS Signer takes the hashes as a set.
	slices.Sort(wantHashes)
	if !slices.Equal(r.CertificateHashes, wantHashes) {
		t.Errorf("certificateHashes = %q\nwant %q", r.CertificateHashes, wantHashes)
	}

	// GovCloud profiles are checked in their own region (and partition).
	gref, _ := f.image(t, f.stack.Registry)
	f.sign(t, gref, f.govcloud, coseType, attrs(govVersionARN), tagSchema)
	got = verify(t, f.verifier(t, f.checker(t, 0), awssigner.RevocationEnforce, govProfileARN), gref)
	expect(t, got, policy.ReasonVerified, "", govVersionARN)
	reqs = f.signer.Requests()
	if r := reqs[len(reqs)-1]; r.Region != "us-gov-west-1" || r.ProfileVersionARN != govVersionARN {
		t.Errorf("GovCloud check went to region %q for %q", r.Region, r.ProfileVersionARN)
	}
}

// TestRevocationUnavailable runs every revocation mode against a Signer
// that fails (HTTP 500) and one that does not answer in time.
func TestRevocationUnavailable(t *testing.T) {
	f := setup(t)
	for _, fault := range []struct {
		name    string
		inject  func()
		timeout time.Duration // of the checker's Signer calls
		detail  string
	}{
		// The SDK retries once; the answer is still a 500.
		{"500", func() { f.signer.FailWith(http.StatusInternalServerError, "InternalServiceErrorException") }, 3 * time.Second, "HTTP 500 InternalServiceErrorException"},
		{"timeout", func() { f.signer.Delay(3 * time.Second) }, 300 * time.Millisecond, "no answer in time"},
	} {
		for _, mode := range []awssigner.RevocationMode{awssigner.RevocationEnforce, awssigner.RevocationBestEffort, awssigner.RevocationSkip} {
			t.Run(fault.name+"/"+string(mode), func(t *testing.T) {
				f.signer.Heal()
				ref, _ := f.image(t, f.stack.ReferrersRegistry)
				a := attrs(versionARN)
				f.sign(t, ref, f.commercial, jwsType, a, referrersAPI)
				checker := f.checker(t, fault.timeout)
				v := f.verifier(t, checker, mode, profileARN)
				fault.inject()
				defer f.signer.Heal()
				calls := f.signer.Calls()

				got := verify(t, v, ref)
				unavailable := "could not check revocation with AWS Signer in us-west-2: " + fault.detail
				var warnings []string
				if n, want := f.signer.Calls()-calls, map[string]int{"500": 2, "timeout": 1}[fault.name]; mode != awssigner.RevocationSkip && n != want {
					t.Errorf("%d calls reached Signer, want %d (the SDK retries a 500 once)", n, want)
				}
				switch mode {
				case awssigner.RevocationEnforce:
					expect(t, got, policy.ReasonRevocationUnavailable, unavailable, versionARN)
					if !got.Transient() {
						t.Error("RevocationUnavailable must be transient")
					}
				case awssigner.RevocationBestEffort:
					expect(t, got, policy.ReasonVerified, "", versionARN)
					warnings = []string{"revocation of signing job " + a.JobARN + " not checked: " + unavailable + "; admitted because revocation is BestEffort"}
				case awssigner.RevocationSkip:
					expect(t, got, policy.ReasonVerified, "", versionARN)
					if n := f.signer.Calls() - calls; n != 0 {
						t.Errorf("Skip made %d Signer calls", n)
					}
				}
				if !slices.Equal(got.Warnings, warnings) {
					t.Errorf("warnings = %q, want %q", got.Warnings, warnings)
				}
				var admitted uint64
				if mode == awssigner.RevocationBestEffort {
					admitted = 1
				}
				if s := checker.Stats(); s.BestEffortAdmitted != admitted {
					t.Errorf("BestEffortAdmitted = %d, want %d", s.BestEffortAdmitted, admitted)
				}
			})
		}
	}

	// A revoked signature is denied in BestEffort mode too; Skip never asks.
	for _, mode := range []awssigner.RevocationMode{awssigner.RevocationBestEffort, awssigner.RevocationSkip} {
		t.Run("revoked/"+string(mode), func(t *testing.T) {
			f.signer.Heal()
			ref, _ := f.image(t, f.stack.Registry)
			a := attrs(versionARN)
			f.sign(t, ref, f.commercial, coseType, a, tagSchema)
			f.signer.RevokeJob(a.JobARN)
			got := verify(t, f.verifier(t, f.checker(t, 0), mode, profileARN), ref)
			if mode == awssigner.RevocationSkip {
				expect(t, got, policy.ReasonVerified, "", versionARN)
				return
			}
			expect(t, got, policy.ReasonRevoked, "revoked in AWS Signer: signing job "+a.JobARN, versionARN)
		})
	}
}

// TestRevocationSignerUnreachable: a Signer endpoint nobody listens on is
// worded as such (the SDK reports it as a response with no status), and
// Enforce denies it as a transient failure.
func TestRevocationSignerUnreachable(t *testing.T) {
	f := setup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_SIGNER", "http://"+closed)
	cfg, err := awsclient.LoadConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checker, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{Clients: awsclient.NewSignerClients(cfg).ForRegion})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := f.image(t, f.stack.ReferrersRegistry)
	f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), referrersAPI)
	got := verify(t, f.verifier(t, checker, awssigner.RevocationEnforce, profileARN), ref)
	expect(t, got, policy.ReasonRevocationUnavailable, "could not check revocation with AWS Signer in us-west-2: cannot connect to "+closed+": connect: connection refused", versionARN)
	if !got.Transient() {
		t.Error("an unreachable Signer must be a transient failure")
	}
}

// TestRevocationCache proves repeated and concurrent verifications of one
// signature ask AWS Signer once per TTL.
func TestRevocationCache(t *testing.T) {
	f := setup(t)
	now := time.Now()
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	checker, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{Clients: f.clients.ForRegion, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(t, checker, awssigner.RevocationEnforce, profileARN)
	ref, _ := f.image(t, f.stack.ReferrersRegistry)
	f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), referrersAPI)

	for range 5 {
		expect(t, verify(t, v, ref), policy.ReasonVerified, "", versionARN)
	}
	if n := f.signer.Calls(); n != 1 {
		t.Fatalf("5 verifications made %d Signer calls, want 1", n)
	}

	// Concurrent first verifications of another signature share one call.
	ref2, _ := f.image(t, f.stack.Registry)
	f.sign(t, ref2, f.commercial, coseType, attrs(versionARN), tagSchema)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { expect(t, verify(t, v, ref2), policy.ReasonVerified, "", versionARN) })
	}
	wg.Wait()
	if n := f.signer.Calls(); n != 2 {
		t.Fatalf("8 concurrent verifications of a new signature made %d Signer calls in all, want 2", n)
	}

	// After the TTL (10 minutes by default) Signer is asked again.
	clockMu.Lock()
	now = now.Add(10*time.Minute + time.Second)
	clockMu.Unlock()
	expect(t, verify(t, v, ref), policy.ReasonVerified, "", versionARN)
	if n := f.signer.Calls(); n != 3 {
		t.Fatalf("after the TTL: %d Signer calls in all, want 3", n)
	}
	s := checker.Stats()
	if s.Lookups != 14 || s.SignerCalls != 3 || s.CacheHits != 11 {
		t.Errorf("stats = %+v, want 14 lookups, 3 Signer calls, 11 cache hits", s)
	}
}

// TestVerdictLivesNoLongerThanItsRevocationAnswer: a verification carries
// the expiry of the revocation answer it relied on, and an answer served
// from the checker's cache keeps its first expiry, so the verdict cache can
// never hold "not revoked" longer than one answer's TTL after AWS Signer
// gave it.
func TestVerdictLivesNoLongerThanItsRevocationAnswer(t *testing.T) {
	f := setup(t)
	ref, _ := f.image(t, f.stack.ReferrersRegistry)
	f.sign(t, ref, f.commercial, jwsType, attrs(versionARN), referrersAPI)
	var mu sync.Mutex
	now := time.Unix(2e9, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	checker, err := awssigner.NewRevocationChecker(awssigner.RevocationOptions{Clients: f.clients.ForRegion, TTL: 10 * time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(t, checker, awssigner.RevocationEnforce, profileARN)
	want := now.Add(10 * time.Minute)
	got := verify(t, v, ref)
	expect(t, got, policy.ReasonVerified, "", versionARN)
	if !got.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil = %v, want the answer's expiry %v", got.ValidUntil, want)
	}
	mu.Lock()
	now = now.Add(9 * time.Minute)
	mu.Unlock()
	calls := f.signer.Calls()
	got = verify(t, v, ref)
	if f.signer.Calls() != calls {
		t.Fatal("the cached answer was not used")
	}
	if !got.ValidUntil.Equal(want) {
		t.Fatalf("from the checker's cache 9 minutes later: ValidUntil = %v, want %v", got.ValidUntil, want)
	}
}
