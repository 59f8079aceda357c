package policy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// countingVerifier stands in for a scheme verifier in cache tests: the
// cache's contract (when work happens, what is kept) is independent of the
// scheme. Real verifiers are exercised in their own packages.
type countingVerifier struct {
	calls  atomic.Int32
	gate   chan struct{} // when set, Verify waits for it
	reason Reason
	warn   bool
}

func (v *countingVerifier) Verify(ctx context.Context, img Image) Result {
	v.calls.Add(1)
	if v.gate != nil {
		<-v.gate
	}
	r := Result{Image: img.Ref.String(), Authority: v.Describe(), Reason: v.reason}
	if v.warn {
		r.Warnings = []string{"revocation not checked"}
	}
	return r
}
func (v *countingVerifier) Identity() string { return "test:" + string(v.reason) }
func (v *countingVerifier) Describe() string { return "test key" }

func testImage(t testing.TB, n byte) Image {
	t.Helper()
	hex := ""
	for i := 0; i < 64; i++ {
		hex += string("0123456789abcdef"[(int(n)+i)%16])
	}
	d, err := name.NewDigest("127.0.0.1:5000/app@sha256:" + hex)
	if err != nil {
		t.Fatal(err)
	}
	return Image{Ref: d}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time             { return c.t }
func (c *fakeClock) add(d time.Duration)        { c.t = c.t.Add(d) }
func newClock() *fakeClock                      { return &fakeClock{t: time.Unix(1e9, 0)} }
func (c *fakeClock) opts() CacheOptions         { return CacheOptions{Now: c.now} }
func (c *fakeClock) optsMax(n int) CacheOptions { o := c.opts(); o.MaxEntries = n; return o }

func TestCacheTTLs(t *testing.T) {
	for _, tt := range []struct {
		reason Reason
		warn   bool
		ttl    time.Duration
	}{
		{ReasonVerified, false, 10 * time.Minute},
		{ReasonVerified, true, 30 * time.Second},
		{ReasonNoSignature, false, 30 * time.Second},
		{ReasonRegistryUnavailable, false, 30 * time.Second},
		{ReasonInvalidSignature, false, 30 * time.Second},
	} {
		t.Run(fmt.Sprintf("%s warnings=%v", tt.reason, tt.warn), func(t *testing.T) {
			clock := newClock()
			c := NewVerdictCache(clock.opts())
			v := &countingVerifier{reason: tt.reason, warn: tt.warn}
			img := testImage(t, 1)
			ctx := context.Background()
			if r, o := c.Verify(ctx, v, img); r.Reason != tt.reason || o != OutcomeMiss {
				t.Fatalf("first Verify = %s %s", r.Reason, o)
			}
			clock.add(tt.ttl - time.Second)
			if _, o := c.Verify(ctx, v, img); o != OutcomeHit {
				t.Fatalf("within TTL: outcome %s, want hit", o)
			}
			clock.add(time.Second)
			if _, o := c.Verify(ctx, v, img); o != OutcomeMiss {
				t.Fatalf("at TTL: outcome %s, want miss", o)
			}
			if got := v.calls.Load(); got != 2 {
				t.Fatalf("verifier ran %d times, want 2", got)
			}
		})
	}
}

func TestCacheKeysByIdentityAndDigest(t *testing.T) {
	c := NewVerdictCache(CacheOptions{})
	a, b := &countingVerifier{reason: ReasonVerified}, &countingVerifier{reason: ReasonNoSignature}
	ctx := context.Background()
	c.Verify(ctx, a, testImage(t, 1))
	c.Verify(ctx, a, testImage(t, 2))
	c.Verify(ctx, b, testImage(t, 1))
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
	c.Forget(a.Identity())
	if c.Len() != 1 {
		t.Fatalf("after Forget: Len = %d, want 1", c.Len())
	}
	if _, o := c.Verify(ctx, b, testImage(t, 1)); o != OutcomeHit {
		t.Fatalf("other identity lost its entry: %s", o)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	clock := newClock()
	c := NewVerdictCache(clock.optsMax(2))
	v := &countingVerifier{reason: ReasonVerified}
	ctx := context.Background()
	c.Verify(ctx, v, testImage(t, 1))
	c.Verify(ctx, v, testImage(t, 2))
	c.Verify(ctx, v, testImage(t, 1)) // 1 is now the most recent
	c.Verify(ctx, v, testImage(t, 3)) // evicts 2
	if _, o := c.Verify(ctx, v, testImage(t, 1)); o != OutcomeHit {
		t.Fatalf("recently used entry evicted")
	}
	if _, o := c.Verify(ctx, v, testImage(t, 2)); o != OutcomeMiss {
		t.Fatalf("least recently used entry kept")
	}
	if s := c.Stats(); s.Evictions != 2 {
		t.Fatalf("Evictions = %d, want 2", s.Evictions)
	}
}

func TestCacheSingleflight(t *testing.T) {
	img := testImage(t, 1)
	// In a synctest bubble, synctest.Wait returns once every caller is
	// blocked: one in the verifier, the 99 others waiting for its answer.
	synctest.Test(t, func(t *testing.T) {
		c := NewVerdictCache(CacheOptions{})
		v := &countingVerifier{reason: ReasonVerified, gate: make(chan struct{})}
		var wg sync.WaitGroup
		outcomes := make(chan Outcome, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, o := c.Verify(context.Background(), v, img)
				if !r.Verified() {
					t.Errorf("result %s", r.Reason)
				}
				outcomes <- o
			}()
		}
		synctest.Wait()
		close(v.gate)
		wg.Wait()
		close(outcomes)
		if got := v.calls.Load(); got != 1 {
			t.Fatalf("100 concurrent identical verifications ran %d times, want 1", got)
		}
		counts := map[Outcome]int{}
		for o := range outcomes {
			counts[o]++
		}
		// One caller did the work (miss); all the others joined it.
		if counts[OutcomeMiss] != 1 || counts[OutcomeShared] != 99 {
			t.Fatalf("outcomes %v, want 1 miss and 99 shared", counts)
		}
		// Every lookup missed; one verification ran (what continuous
		// validation reports as a cycle's verifications).
		if s := c.Stats(); s.Verifications != 1 || s.Misses != 100 || s.Shared != 99 {
			t.Fatalf("stats %+v, want 1 verification, 100 misses, 99 shared", s)
		}
	})
}

func TestCacheCallerDeadlineDoesNotCancelSharedWork(t *testing.T) {
	c := NewVerdictCache(CacheOptions{})
	v := &countingVerifier{reason: ReasonVerified, gate: make(chan struct{})}
	img := testImage(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r, _ := c.Verify(ctx, v, img)
	want := "verification did not finish in time (it goes on in the background; retry shortly)"
	if r.Reason != ReasonTimeout || r.Cause != want || !r.Transient() {
		t.Fatalf("timed-out result = %+v", r)
	}
	close(v.gate) // the background work finishes and fills the cache
	for i := 0; c.Len() == 0 && i < 1000; i++ {
		time.Sleep(time.Millisecond)
	}
	if r, o := c.Verify(context.Background(), v, img); o != OutcomeHit || !r.Verified() {
		t.Fatalf("retry = %s %s, want a verified hit", r.Reason, o)
	}
}

// TestCacheKeyIgnoresTheTagOfAPinnedReference: the pinning webhook
// verifies the resolved "repo@digest"; the validating webhook then sees
// "repo:tag@digest". Both are one cache entry, so one verification.
func TestCacheKeyIgnoresTheTagOfAPinnedReference(t *testing.T) {
	c := NewVerdictCache(CacheOptions{})
	v := &countingVerifier{reason: ReasonVerified}
	ctx := context.Background()
	hex := "sha256:" + strings.Repeat("ab", 32)
	for _, ref := range []string{"nginx@" + hex, "nginx:1.27@" + hex, "docker.io/library/nginx:1.27@" + hex, "index.docker.io/library/nginx@" + hex} {
		d, err := name.NewDigest(ref)
		if err != nil {
			t.Fatal(err)
		}
		c.Verify(ctx, v, Image{Ref: d})
	}
	if got := v.calls.Load(); got != 1 {
		t.Fatalf("verified %d times, want 1", got)
	}
	other, _ := name.NewDigest("127.0.0.1:5000/nginx@" + hex)
	c.Verify(ctx, v, Image{Ref: other})
	if got := v.calls.Load(); got != 2 {
		t.Fatalf("another repository with the same digest: verified %d times in all, want 2", got)
	}
}

// validUntilVerifier verifies, relying on an answer that expires at until.
type validUntilVerifier struct {
	countingVerifier
	until time.Time
}

func (v *validUntilVerifier) Verify(ctx context.Context, img Image) Result {
	r := v.countingVerifier.Verify(ctx, img)
	r.ValidUntil = v.until
	return r
}

// TestCacheNeverOutlivesWhatAVerdictReliedOn: a verified result that relied
// on a revocation answer expiring in 2 minutes is cached 2 minutes, not
// the 10 of PositiveTTL; a later expiry does not extend PositiveTTL.
func TestCacheNeverOutlivesWhatAVerdictReliedOn(t *testing.T) {
	for _, tt := range []struct {
		name   string
		until  time.Duration
		cached time.Duration
	}{
		{"answer expires first", 2 * time.Minute, 2 * time.Minute},
		{"verdict TTL expires first", time.Hour, 10 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			c := NewVerdictCache(clock.opts())
			v := &validUntilVerifier{countingVerifier: countingVerifier{reason: ReasonVerified}, until: clock.now().Add(tt.until)}
			img := testImage(t, 1)
			ctx := context.Background()
			c.Verify(ctx, v, img)
			clock.add(tt.cached - time.Second)
			if _, o := c.Verify(ctx, v, img); o != OutcomeHit {
				t.Fatalf("1s before %s: outcome %s, want hit", tt.cached, o)
			}
			clock.add(time.Second)
			if _, o := c.Verify(ctx, v, img); o != OutcomeMiss {
				t.Fatalf("at %s: outcome %s, want miss", tt.cached, o)
			}
		})
	}
}

// credentialVerifier answers by the credentials asked with: refused for
// "bogus", verified or not signed otherwise.
type credentialVerifier struct {
	calls  atomic.Int32
	signed bool
}

func (v *credentialVerifier) Verify(_ context.Context, img Image) Result {
	v.calls.Add(1)
	r := Result{Image: img.Ref.String(), Authority: v.Describe(), Reason: ReasonNoSignature, Cause: "no signature found"}
	switch {
	case img.KeychainID == "bogus":
		r.Reason, r.Cause, r.RegistryDenied = ReasonRegistryUnavailable, "registry denied access (HTTP 401)", true
	case v.signed:
		r.Reason, r.Cause = ReasonVerified, ""
	}
	return r
}
func (v *credentialVerifier) Identity() string { return "test;credentials" }
func (v *credentialVerifier) Describe() string { return "test key" }

// TestCacheSharesOnlyVerifiedAcrossCredentials: a result other than
// Verified serves only requests with the same credentials; Verified
// serves everyone.
func TestCacheSharesOnlyVerifiedAcrossCredentials(t *testing.T) {
	ctx := context.Background()
	c := NewVerdictCache(newClock().opts())
	v := &credentialVerifier{}
	img := testImage(t, 1)
	with := func(id string) Image { i := img; i.KeychainID = id; return i }

	if r, o := c.Verify(ctx, v, with("bogus")); !r.RegistryDenied || o != OutcomeMiss {
		t.Fatalf("bogus credentials: %+v %s", r, o)
	}
	if r, o := c.Verify(ctx, v, with("bogus")); !r.RegistryDenied || o != OutcomeHit {
		t.Fatalf("bogus credentials again: %+v %s, want the cached refusal", r, o)
	}
	for _, id := range []string{"team-b", ""} {
		if r, o := c.Verify(ctx, v, with(id)); r.Reason != ReasonNoSignature || o != OutcomeMiss {
			t.Fatalf("credentials %q: %s %s, want their own verification", id, r.Reason, o)
		}
	}
	// Signet's own "no signature" is not another namespace's either.
	if _, o := c.Verify(ctx, v, with("team-c")); o != OutcomeMiss || v.calls.Load() != 4 {
		t.Fatalf("team-c: %s after %d calls, want a fourth verification", o, v.calls.Load())
	}

	signedImg := testImage(t, 2)
	sv := &credentialVerifier{signed: true}
	signedImg.KeychainID = "team-b"
	if r, o := c.Verify(ctx, sv, signedImg); !r.Verified() || o != OutcomeMiss {
		t.Fatalf("signed: %s %s", r.Reason, o)
	}
	for _, id := range []string{"team-c", ""} {
		signedImg.KeychainID = id
		if r, o := c.Verify(ctx, sv, signedImg); !r.Verified() || o != OutcomeHit {
			t.Fatalf("signed, credentials %q: %s %s, want the shared Verified", id, r.Reason, o)
		}
	}
}

// TestCacheSlotsDoNotRepeatWork: callers that waited for a verification
// slot while the work they need was done by another are answered from the
// cache, not by verifying again.
func TestCacheSlotsDoNotRepeatWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewVerdictCache(CacheOptions{MaxConcurrent: 1})
		v := &countingVerifier{reason: ReasonVerified, gate: make(chan struct{})}
		img := testImage(t, 1)
		results := make(chan Outcome, 10)
		for range 10 {
			go func() {
				_, o := c.Verify(context.Background(), v, img)
				results <- o
			}()
		}
		synctest.Wait() // one verifies, holding the slot; nine wait for it
		close(v.gate)
		outcomes := map[Outcome]int{}
		for range 10 {
			outcomes[<-results]++
		}
		if v.calls.Load() != 1 || outcomes[OutcomeMiss] != 1 || outcomes[OutcomeHit] != 9 {
			t.Fatalf("%d verifications, outcomes %v; want 1 verification, 1 miss and 9 hits", v.calls.Load(), outcomes)
		}
	})
}

// TestCacheBusy: a caller that gets no verification slot before its
// deadline is told Signet is busy, and that answer is not cached.
func TestCacheBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewVerdictCache(CacheOptions{MaxConcurrent: 2})
		held := &countingVerifier{reason: ReasonVerified, gate: make(chan struct{})}
		for i := range 2 {
			go c.Verify(context.Background(), held, testImage(t, byte(10+i)))
		}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v := &countingVerifier{reason: ReasonVerified}
		r, _ := c.Verify(ctx, v, testImage(t, 1))
		want := "Signet is busy: all 2 verification slots (--max-concurrent-verifications) stayed taken until the admission's deadline"
		if r.Reason != ReasonBusy || r.Cause != want || !r.Transient() || v.calls.Load() != 0 {
			t.Fatalf("got %s %q after %d verifications, want %s %q after none", r.Reason, r.Cause, v.calls.Load(), ReasonBusy, want)
		}
		close(held.gate)
		synctest.Wait()
		if r, o := c.Verify(context.Background(), v, testImage(t, 1)); !r.Verified() || o != OutcomeMiss {
			t.Fatalf("after the slots freed: %s %s, want a verification (busy is not cached)", r.Reason, o)
		}
	})
}
