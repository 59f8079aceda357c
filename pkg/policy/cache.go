package policy

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// CacheOptions configure a VerdictCache. Zero values take the defaults.
type CacheOptions struct {
	// PositiveTTL keeps a verified result (default 10 min).
	PositiveTTL time.Duration
	// NegativeTTL keeps every other result, and verified results that
	// carry warnings (default 30 s): transient
	// failures must be retried soon, and "not signed" may become signed
	// minutes later when the pipeline catches up.
	NegativeTTL time.Duration
	// MaxEntries bounds memory (default 20,000; least recently used goes first).
	MaxEntries int
	// WorkTimeout bounds one shared verification, which runs on after the
	// caller that started it gave up so that its retry hits the cache
	// (default 30 s).
	WorkTimeout time.Duration
	// MaxConcurrent bounds the verifications that miss the cache and run at
	// once in the process (0: unbounded). A caller waits for a slot until
	// its context ends, then gets a ReasonBusy result, which is not cached.
	MaxConcurrent int
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// VerdictCache is the one cache of verification results shared by every
// caller (webhook handlers, the CLI), keyed by digest and verifier
// identity. A Verified result is shared by every caller; any other result,
// and work in flight, only among callers with the same credentials
// (Image.KeychainID): a Pod with bogus pull secrets must not get its
// "access denied" served to another namespace. Concurrent identical
// verifications do the work once.
type VerdictCache struct {
	opts  CacheOptions
	group singleflight.Group
	// slots holds one token per running verification (MaxConcurrent).
	slots chan struct{}

	mu      sync.Mutex
	entries map[cacheKey]*list.Element
	lru     *list.List // front: most recently used
	stats   CacheStats
}

// CacheStats count cache outcomes since the cache was made.
type CacheStats struct {
	Hits, Misses, Shared, Evictions uint64
	// Verifications counts the verifier calls the cache made: a lookup
	// that missed and then joined work in flight, or found the result on
	// a second look, is a miss but no verification.
	Verifications uint64
}

type cacheKey struct {
	digest, identity string
	// keychain is Image.KeychainID for results other than Verified, and
	// empty for Verified ones (and Signet's own credentials).
	keychain string
}

type cacheEntry struct {
	key     cacheKey
	result  Result
	expires time.Time
}

// NewVerdictCache builds a cache.
func NewVerdictCache(opts CacheOptions) *VerdictCache {
	if opts.PositiveTTL <= 0 {
		opts.PositiveTTL = 10 * time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 30 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 20000
	}
	if opts.WorkTimeout <= 0 {
		opts.WorkTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &VerdictCache{opts: opts, entries: map[cacheKey]*list.Element{}, lru: list.New()}
	if opts.MaxConcurrent > 0 {
		c.slots = make(chan struct{}, opts.MaxConcurrent)
	}
	return c
}

// Outcome says how Verify got its result, for metrics.
type Outcome string

// Cache outcomes.
const (
	OutcomeHit    Outcome = "hit"
	OutcomeMiss   Outcome = "miss"   // this call did the work
	OutcomeShared Outcome = "shared" // joined work another call started
)

// Verify returns v's verdict on img from the cache, or verifies once for
// all concurrent callers. If ctx ends first, Verify returns a transient
// result for this caller while the shared work finishes and fills the
// cache for the next try.
func (c *VerdictCache) Verify(ctx context.Context, v Verifier, img Image) (Result, Outcome) {
	// The key is the repository and digest, not the reference as written:
	// "app:v1@sha256:…" (a pinned Pod) and "app@sha256:…" (its resolved
	// tag) are one verification.
	shared := cacheKey{digest: Repository(img.Ref) + "@" + img.Ref.DigestStr(), identity: v.Identity()}
	key := shared
	key.keychain = img.KeychainID
	if r, ok := c.get(shared, key, true); ok {
		return r, OutcomeHit
	}
	if c.slots != nil {
		select {
		case c.slots <- struct{}{}:
			defer func() { <-c.slots }()
			// While this call waited, the verification it needs may have
			// finished (a burst of one new image waits behind its first).
			if r, ok := c.get(shared, key, false); ok {
				return r, OutcomeHit
			}
		case <-ctx.Done():
			return Result{
				Image:     img.Ref.String(),
				Authority: v.Describe(),
				Reason:    ReasonBusy,
				Cause:     fmt.Sprintf("Signet is busy: all %d verification slots (--max-concurrent-verifications) stayed taken until the admission's deadline", cap(c.slots)),
			}, OutcomeMiss
		}
	}
	// leader is set by the one call whose function runs. singleflight
	// reports Shared to that call too once others joined it, so Shared
	// alone cannot tell who did the work.
	leader, hit := false, false
	ch := c.group.DoChan(key.digest+"\x00"+key.identity+"\x00"+key.keychain, func() (any, error) {
		leader = true
		// A call that missed the cache just before the previous
		// verification filled it, and reached the group just after that
		// verification left it, starts a new group: look once more
		// instead of verifying the same digest twice.
		if r, ok := c.get(shared, key, false); ok {
			hit = true
			return r, nil
		}
		// The work belongs to every waiter, not to the first caller:
		// keep its values (logger, request ID) but not its cancellation.
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.WorkTimeout)
		defer cancel()
		c.count(func(s *CacheStats) { s.Verifications++ })
		r := v.Verify(work, img)
		if r.Verified() {
			c.put(shared, r)
		} else {
			c.put(key, r)
		}
		return r, nil
	})
	select {
	case res := <-ch:
		outcome := OutcomeMiss
		switch {
		case hit:
			outcome = OutcomeHit
		case !leader:
			outcome = OutcomeShared
			c.count(func(s *CacheStats) { s.Shared++ })
		}
		return res.Val.(Result), outcome
	case <-ctx.Done():
		return Result{
			Image:     img.Ref.String(),
			Authority: v.Describe(),
			Reason:    ReasonTimeout,
			Cause:     "verification did not finish in time (it goes on in the background; retry shortly)",
		}, OutcomeMiss
	}
}

// Forget drops every cached result of a verifier identity, e.g. when the
// policy that used it changed.
func (c *VerdictCache) Forget(identity string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if k.identity == identity {
			c.lru.Remove(e)
			delete(c.entries, k)
		}
	}
}

// Len is the number of cached results.
func (c *VerdictCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Stats returns the counters.
func (c *VerdictCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *VerdictCache) count(f func(*CacheStats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// get returns the live entry for own credentials (key), or a Verified one
// from the shared key: a result other than Verified under the shared key
// belongs to Signet's own credentials, which key is then too.
// A miss is counted only when countMiss is set (a second look after
// waiting for a slot is the same miss).
func (c *VerdictCache) get(shared, key cacheKey, countMiss bool) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range []cacheKey{shared, key} {
		r, ok := c.live(k)
		if ok && (k == key || r.Verified()) {
			c.stats.Hits++
			return r, true
		}
		if k == key {
			break
		}
	}
	if countMiss {
		c.stats.Misses++
	}
	return Result{}, false
}

// live returns the unexpired entry under key; c.mu is held.
func (c *VerdictCache) live(key cacheKey) (Result, bool) {
	e, ok := c.entries[key]
	if !ok {
		return Result{}, false
	}
	entry := e.Value.(*cacheEntry)
	if !c.opts.Now().Before(entry.expires) {
		c.lru.Remove(e)
		delete(c.entries, key)
		return Result{}, false
	}
	c.lru.MoveToFront(e)
	return entry.result, true
}

func (c *VerdictCache) put(key cacheKey, r Result) {
	// Verified with warnings (e.g. revocation unchecked in BestEffort mode)
	// is a degraded answer: keep it only as long as a failure, so the
	// check is retried soon.
	ttl := c.opts.NegativeTTL
	if r.Verified() && len(r.Warnings) == 0 {
		ttl = c.opts.PositiveTTL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.lru.Remove(e)
	}
	expires := c.opts.Now().Add(ttl)
	if !r.ValidUntil.IsZero() && r.ValidUntil.Before(expires) {
		expires = r.ValidUntil // never outlive what the verdict relied on
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, result: r, expires: expires})
	for c.lru.Len() > c.opts.MaxEntries {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
		c.stats.Evictions++
	}
}
