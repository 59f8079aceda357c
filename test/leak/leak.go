// Package leak proves a test leaves no goroutine behind: it counts
// goroutines before and, when the test's servers are closed, waits a
// bounded time for the count to come back, polling, never sleeping a fixed
// time.
package leak

import (
	"runtime"
	"testing"
	"time"
)

// Settle is how long goroutines may take to wind down (a call bounded by
// its own timeout finishing, connections closing).
const Settle = 10 * time.Second

// Count returns the number of goroutines now.
func Count() int { return runtime.NumGoroutine() }

// Check records the goroutines now; the returned func fails tb when, within
// Settle, their number does not come back to at most that, and returns how
// long it took. Call it after closing what the test started.
func Check(tb testing.TB) func() time.Duration {
	tb.Helper()
	before := Count()
	return func() time.Duration {
		tb.Helper()
		begin := time.Now()
		deadline := begin.Add(Settle)
		for Count() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				tb.Fatalf("%d goroutines before, %d after %s:\n%s", before, Count(), Settle, buf[:n])
			}
			runtime.Gosched()
			time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
		}
		return time.Since(begin)
	}
}
