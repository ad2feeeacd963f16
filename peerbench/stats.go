package main

import (
	"math"
	"sort"
)

// sortedCopy returns xs sorted ascending, leaving xs untouched.
func sortedCopy(xs []float64) []float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s
}

// median returns the median of xs (the mean of the two middle values for an
// even count), or NaN when xs is empty.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	s := sortedCopy(xs)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method: the smallest sample such that at least p% of the
// samples are <= it. It returns NaN for no samples or p out of range.
func percentile(xs []float64, p float64) float64 {
	n := len(xs)
	if n == 0 || !(p > 0 && p <= 100) {
		return math.NaN()
	}
	// The epsilon keeps exact ranks (p90 of 200 = 180) from rounding up.
	rank := int(math.Ceil(p*float64(n)/100 - 1e-9))
	rank = max(1, min(rank, n))
	return sortedCopy(xs)[rank-1]
}
