package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary describes the latencies of one case: nearest-rank percentiles
// of the samples, and throughput over the wall time they took.
type Summary struct {
	N             int
	Errors        int
	P50, P90, P99 time.Duration
	Max           time.Duration
	Wall          time.Duration
	ErrorSamples  []string // up to three error messages
}

// summarize computes the percentiles of lat (which it sorts) over wall.
func summarize(lat []time.Duration, wall time.Duration) Summary {
	slices.Sort(lat)
	s := Summary{N: len(lat), Wall: wall}
	if len(lat) == 0 {
		return s
	}
	s.P50 = percentile(lat, 50)
	s.P90 = percentile(lat, 90)
	s.P99 = percentile(lat, 99)
	s.Max = lat[len(lat)-1]
	return s
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted:
// the smallest sample such that at least p% of the samples are at or
// below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(rank, 1)
	rank = min(rank, len(sorted))
	return sorted[rank-1]
}

// Throughput is completed requests per second of wall time.
func (s Summary) Throughput() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.N) / s.Wall.Seconds()
}

// ms formats a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
