// Package expiring is a small bounded map whose entries expire after a
// fixed time: the cache behind the AWS Signer revocation answers and the
// pull-secret keychains shared between admissions. (The verdict cache in
// pkg/policy needs per-entry lifetimes and LRU order, and keeps its own.)
package expiring

import (
	"sync"
	"time"
)

// Map holds at most max entries, each for ttl after it was put. When full,
// expired entries go first, then arbitrary ones: callers can always
// recompute what they lose.
type Map[K comparable, V any] struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[K]entry[V]
}

type entry[V any] struct {
	val     V
	expires time.Time
}

// New returns an empty Map; now is the clock (time.Now when nil).
func New[K comparable, V any](ttl time.Duration, maxEntries int, now func() time.Time) *Map[K, V] {
	if now == nil {
		now = time.Now
	}
	return &Map[K, V]{ttl: ttl, max: maxEntries, now: now, entries: map[K]entry[V]{}}
}

// Get returns the live value of k.
func (m *Map[K, V]) Get(k K) (V, bool) {
	v, _, ok := m.GetExpiring(k)
	return v, ok
}

// GetExpiring returns the live value of k and when it expires.
func (m *Map[K, V]) GetExpiring(k K) (V, time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.getLocked(k)
	return v, m.entries[k].expires, ok
}

// Put stores v under k for the Map's ttl and returns when it expires.
func (m *Map[K, V]) Put(k K, v V) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.putLocked(k, v)
	return m.entries[k].expires
}

// Update replaces the value of k with f(current, live) unless f returns
// the current value unchanged, all under one lock, and returns the value k
// then holds. A value that f leaves unchanged keeps its original expiry.
func (m *Map[K, V]) Update(k K, f func(cur V, live bool) (next V, replace bool)) V {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, live := m.getLocked(k)
	next, replace := f(cur, live)
	if replace {
		m.putLocked(k, next)
	}
	return next
}

func (m *Map[K, V]) getLocked(k K) (V, bool) {
	e, ok := m.entries[k]
	if !ok || !m.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.val, true
}

func (m *Map[K, V]) putLocked(k K, v V) {
	now := m.now()
	if _, ok := m.entries[k]; !ok && len(m.entries) >= m.max {
		for key, e := range m.entries {
			if !now.Before(e.expires) {
				delete(m.entries, key)
			}
		}
		for key := range m.entries {
			if len(m.entries) < m.max {
				break
			}
			delete(m.entries, key)
		}
	}
	m.entries[k] = entry[V]{val: v, expires: now.Add(m.ttl)}
}

// Len is the number of entries held, expired ones included.
func (m *Map[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
