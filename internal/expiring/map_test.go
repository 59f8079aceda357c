package expiring

import (
	"testing"
	"time"
)

func TestExpiryAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	m := New[string, int](time.Minute, 2, func() time.Time { return now })
	m.Put("a", 1)
	if v, ok := m.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	now = now.Add(time.Minute)
	if _, ok := m.Get("a"); ok {
		t.Fatal("an entry outlived its ttl")
	}
	// Full: the expired entry goes first, so both live ones stay.
	m.Put("b", 2)
	m.Put("c", 3)
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (a expired and evicted)", m.Len())
	}
	// Full of live entries: one goes, the bound holds.
	m.Put("d", 4)
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want the bound 2", m.Len())
	}
	if v, ok := m.Get("d"); !ok || v != 4 {
		t.Fatalf("the newest entry is missing: %d, %v", v, ok)
	}
}

func TestUpdateKeepsOrReplaces(t *testing.T) {
	now := time.Unix(1000, 0)
	m := New[string, int](time.Minute, 10, func() time.Time { return now })
	keepOrMake := func(cur int, live bool) (int, bool) {
		if live {
			return cur, false
		}
		return 7, true
	}
	if got := m.Update("k", keepOrMake); got != 7 {
		t.Fatalf("Update on an empty map = %d, want the made 7", got)
	}
	m.Put("k", 8)
	now = now.Add(30 * time.Second)
	if got := m.Update("k", keepOrMake); got != 8 {
		t.Fatalf("Update on a live entry = %d, want the kept 8", got)
	}
	now = now.Add(30 * time.Second) // 8 was put 60 s ago: kept entries keep their expiry
	if got := m.Update("k", keepOrMake); got != 7 {
		t.Fatalf("Update after expiry = %d, want a new 7", got)
	}
}
