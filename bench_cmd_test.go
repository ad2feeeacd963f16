package main

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
)

// TestBenchCommand checks what `warmport bench` prints and how it fails; it
// asserts no speed (machines are noisy), only that the numbers are there.
func TestBenchCommand(t *testing.T) {
	t.Run("embedded json", func(t *testing.T) {
		r := runWarmport(t, "bench", "--json", "-n", "5", "--interval", "5ms", "--setup-delay", "5ms")
		if r.status != 0 {
			t.Fatalf("status %d; want 0 (stderr %q)", r.status, r.stderr)
		}
		var res struct {
			Embedded bool `json:"embedded"`
			Clients  int  `json:"clients"`
			Modes    []struct {
				Name    string  `json:"name"`
				P50     float64 `json:"p50_ms"`
				P99     float64 `json:"p99_ms"`
				HitRate float64 `json:"pool_hit_rate"`
			} `json:"modes"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("stdout %q: %v", r.stdout, err)
		}
		if !res.Embedded || res.Clients != 5 || len(res.Modes) != 3 {
			t.Fatalf("got %+v; want 3 modes of 5 clients against the embedded upstream", res)
		}
		for i, want := range []string{"direct", "warmport --warm 0", "warmport --warm 2"} {
			m := res.Modes[i]
			if m.Name != want || m.P50 <= 0 || m.P99 < m.P50 {
				t.Errorf("mode %d = %+v; want %q with 0 < p50 <= p99", i, m, want)
			}
		}
		if res.Modes[2].HitRate <= 0 {
			t.Errorf("pooled mode hit rate %v; want > 0", res.Modes[2].HitRate)
		}
	})
	t.Run("table", func(t *testing.T) {
		r := runWarmport(t, "bench", "-n", "3", "--interval", "5ms", "--setup-delay", "5ms")
		if r.status != 0 || !strings.Contains(r.stdout, "warmport --warm 2") || !strings.Contains(r.stdout, "P99") {
			t.Fatalf("status %d, stdout %q; want a table with the three modes", r.status, r.stdout)
		}
	})

	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() { // accepts and never speaks
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		has    string
	}{
		{"dead remote", []string{"bench", dead}, 1, "cannot connect to " + dead},
		{"silent remote", []string{"bench", "--timeout", "300ms", silent.Addr().String()}, 1, "--send"},
		{"bad remote", []string{"bench", "db"}, 2, "bad REMOTE"},
		{"flag after remote", []string{"bench", dead, "--json"}, 2, "flags go first"},
		{"zero clients", []string{"bench", "-n", "0"}, 2, "--clients"},
		{"bad escape", []string{"bench", "--send", `\q`, dead}, 2, "unknown escape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWarmport(t, tc.args...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if r.status != tc.status || len(lines) != 1 || !strings.HasPrefix(lines[0], "warmport: ") || !strings.Contains(r.stderr, tc.has) {
				t.Fatalf("status %d, stderr %q; want status %d and one line mentioning %q", r.status, r.stderr, tc.status, tc.has)
			}
		})
	}
}
