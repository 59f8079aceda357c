package policy

import (
	"container/list"
	"context"
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
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// VerdictCache is the one cache of verification results shared by every
// caller (webhook handlers, the CLI), keyed by digest and verifier
// identity. Concurrent identical verifications do the work once.
type VerdictCache struct {
	opts  CacheOptions
	group singleflight.Group

	mu      sync.Mutex
	entries map[cacheKey]*list.Element
	lru     *list.List // front: most recently used
	stats   CacheStats
}

// CacheStats count cache outcomes since the cache was made.
type CacheStats struct {
	Hits, Misses, Shared, Evictions uint64
}

type cacheKey struct {
	digest, identity string
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
	return &VerdictCache{opts: opts, entries: map[cacheKey]*list.Element{}, lru: list.New()}
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
	key := cacheKey{digest: Repository(img.Ref) + "@" + img.Ref.DigestStr(), identity: v.Identity()}
	if r, ok := c.get(key); ok {
		return r, OutcomeHit
	}
	// leader is set by the one call whose function runs. singleflight
	// reports Shared to that call too once others joined it, so Shared
	// alone cannot tell who did the work.
	leader := false
	ch := c.group.DoChan(key.digest+"\x00"+key.identity, func() (any, error) {
		leader = true
		// The work belongs to every waiter, not to the first caller:
		// keep its values (logger, request ID) but not its cancellation.
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.WorkTimeout)
		defer cancel()
		r := v.Verify(work, img)
		c.put(key, r)
		return r, nil
	})
	select {
	case res := <-ch:
		outcome := OutcomeMiss
		if !leader {
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

func (c *VerdictCache) get(key cacheKey) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		c.stats.Misses++
		return Result{}, false
	}
	entry := e.Value.(*cacheEntry)
	if !c.opts.Now().Before(entry.expires) {
		c.lru.Remove(e)
		delete(c.entries, key)
		c.stats.Misses++
		return Result{}, false
	}
	c.lru.MoveToFront(e)
	c.stats.Hits++
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
