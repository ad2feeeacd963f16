package main

import (
	"math"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"one", []float64{7}, 7},
		{"odd unsorted", []float64{3, 1, 2}, 2},
		{"even is mean of middle two", []float64{4, 1, 3, 2}, 2.5},
		{"duplicates", []float64{5, 5, 1}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v; want %v", tt.in, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("median reordered its input: %v; want %v", tt.in, in)
				}
			}
		})
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v; want NaN", got)
	}
}

func TestPercentile(t *testing.T) {
	// 1..200: nearest rank p of n is the ceil(p*n/100)-th smallest value.
	var xs []float64
	for i := 200; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	tests := []struct {
		p    float64
		want float64
	}{
		{50, 100}, {90, 180}, {99, 198}, {100, 200}, {0.1, 1}, {99.9, 200},
	}
	for _, tt := range tests {
		if got := percentile(xs, tt.p); got != tt.want {
			t.Errorf("percentile(1..200, %v) = %v; want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile([]float64{42}, 99); got != 42 {
		t.Errorf("percentile([42], 99) = %v; want 42", got)
	}
	for _, p := range []float64{0, -1, 101, math.NaN()} {
		if got := percentile(xs, p); !math.IsNaN(got) {
			t.Errorf("percentile(xs, %v) = %v; want NaN", p, got)
		}
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile(nil, 50) = %v; want NaN", got)
	}
}
