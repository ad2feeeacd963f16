package main

import (
	"io"
	"testing"
)

// TestBenchGolden: the bench table, against the embedded upstream where the
// pool saves most of the wait and against a REMOTE where it saves nothing,
// without colors and with them, is what testdata/ holds. Run with -update
// to rewrite the files after a deliberate change, and read the diff.
func TestBenchGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  benchResult
	}{
		{"bench-embedded", benchResult{Remote: "127.0.0.1:41234", Embedded: true, SetupDelay: 20, Clients: 50, SavedP50: 20.004,
			Modes: []benchMode{
				{Name: "direct", P50: 20.317, P90: 20.52, P99: 21.906},
				{Name: "warmport --warm 0", P50: 20.611, P90: 20.93, P99: 23.4},
				{Name: "warmport --warm 2", P50: 0.313, P90: 0.402, P99: 1.25, HitRate: 1},
			}}},
		{"bench-remote", benchResult{Remote: "web.internal:80", Clients: 1000, SavedP50: -0.021,
			Modes: []benchMode{
				{Name: "direct", P50: 0.098, P90: 0.131, P99: 0.402},
				{Name: "warmport --warm 0", P50: 0.187, P90: 0.25, P99: 0.71},
				{Name: "warmport --warm 4", P50: 0.119, P90: 0.16, P99: 1312.5, HitRate: 0.994},
			}}},
	} {
		goldenColors(t, tc.name, func(w io.Writer) { renderBench(w, &tc.res) })
	}
}
