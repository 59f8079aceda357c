package cosign

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/internal/awsclient"
)

// KMSClients hands out KMS clients by region; *awsclient.KMSClients is one.
type KMSClients interface {
	// ForRegion returns the client for region; "" means the configured one.
	ForRegion(region string) awsclient.KMS
	// Region is the configured region ("" when none is).
	Region() string
}

// KMSKeysOptions configure KMSKeys. Zero values take the defaults.
type KMSKeysOptions struct {
	// RefreshInterval is how often every key is read again (default 10 min).
	RefreshInterval time.Duration
	// MinRefreshGap is the least time between two refreshes of one alias key
	// triggered by failed verifications (default 1 min).
	MinRefreshGap time.Duration
	// FetchTimeout bounds one GetPublicKey (default 10 s).
	FetchTimeout time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
	// Lazy defers each key's first read from Get to the first verification
	// that finds a signature to check with it: the CLI, which verifies a
	// few images once, then asks KMS nothing for an unsigned image. (The
	// webhook reads keys when policies load, so a policy's Ready condition
	// tells a key KMS refuses.)
	Lazy bool
}

// KMSKeys is the process's cache of KMS public keys, keyed by URI and
// shared by every policy: two policies naming awskms:///alias/cosign load
// and refresh it once. Build one per process and run Start.
//
// Keys stay in the cache for the life of the process (one GetPublicKey per
// key per RefreshInterval); the set is bounded by the keys policies have
// named, which is small.
type KMSKeys struct {
	clients KMSClients
	opts    KMSKeysOptions
	loads   singleflight.Group

	mu   sync.Mutex
	keys map[string]*KMSKey
}

// NewKMSKeys builds the cache over clients.
func NewKMSKeys(clients KMSClients, opts KMSKeysOptions) *KMSKeys {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 10 * time.Minute
	}
	if opts.MinRefreshGap <= 0 {
		opts.MinRefreshGap = time.Minute
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &KMSKeys{clients: clients, opts: opts, keys: map[string]*KMSKey{}}
}

// Get returns the key for uri, reading it from KMS if no policy named it
// before (unless Lazy). The error carries KMS's answer (the policy store puts it in the
// policy's Ready condition); a failed load is not cached, so the next
// policy reconcile tries again.
func (c *KMSKeys) Get(ctx context.Context, uri string) (*KMSKey, error) {
	c.mu.Lock()
	k, ok := c.keys[uri]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	ref, err := parseKMSRef(uri)
	if err != nil {
		return nil, err
	}
	if ref.Region == "" && c.clients.Region() == "" {
		return nil, fmt.Errorf("%s names no region and the AWS configuration has none: set AWS_REGION or name the key by ARN", uri)
	}
	v, err, _ := c.loads.Do(uri, func() (any, error) {
		k := &KMSKey{ref: ref, client: c.clients.ForRegion(ref.Region), opts: &c.opts}
		if !c.opts.Lazy {
			if err := k.refresh(ctx); err != nil {
				return nil, err
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if existing, ok := c.keys[uri]; ok {
			return existing, nil
		}
		c.keys[uri] = k
		return k, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*KMSKey), nil
}

// Start refreshes every key each RefreshInterval until ctx ends. It has
// controller-runtime's Runnable shape, so a manager can run it.
func (c *KMSKeys) Start(ctx context.Context) error {
	t := time.NewTicker(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.RefreshAll(ctx)
		}
	}
}

// RefreshAll reads every key again, one after another.
func (c *KMSKeys) RefreshAll(ctx context.Context) {
	c.mu.Lock()
	keys := make([]*KMSKey, 0, len(c.keys))
	for _, k := range c.keys {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		if ctx.Err() != nil {
			return
		}
		_, _ = k.Refresh(ctx)
	}
}
