package main

import (
	"strings"
	"testing"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// TestBenchTLS: `bench --tls` with no REMOTE measures against an embedded
// TLS upstream with a generated certificate (so it works on any machine);
// with a REMOTE and the TLS flags, against the user's own TLS server: the
// direct client makes the handshake itself, the others go through
// warmport --tls, and the pooled mode is served by the pool.
func TestBenchTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	srv := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Localhost(t)})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"embedded", []string{"--setup-delay", "2ms"}},
		{"remote", []string{"--tls-ca", ca.File, "--send", "x", srv.Addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWarmport(t, append([]string{"bench", "--tls", "--json", "-n", "4", "--interval", "1ms"}, tc.args...)...)
			if r.status != 0 {
				t.Fatalf("status %d; want 0 (stderr %q)", r.status, r.stderr)
			}
			res := parseBench(t, r.stdout, "direct TLS", "warmport --tls --warm 0", "warmport --tls --warm 2")
			if !res.TLS {
				t.Errorf("tls: got false; want true")
			}
		})
	}
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		has    string
	}{
		{"flag without REMOTE", []string{"bench", "--tls", "--tls-ca", ca.File}, 2, "drop --tls-ca, or name REMOTE"},
		{"flag without --tls", []string{"bench", "--tls-insecure", srv.Addr}, 2, "--tls-insecure needs --tls"},
		{"unknown CA", []string{"bench", "--tls", "--send", "x", srv.Addr}, 1, "pass --tls-ca FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runWarmport(t, tc.args...)
			ls := lines(r.stderr)
			if r.status != tc.status || len(ls) != 1 || !strings.Contains(ls[0], tc.has) {
				t.Fatalf("status %d, stderr %q; want %d and one line containing %q", r.status, r.stderr, tc.status, tc.has)
			}
		})
	}
}
