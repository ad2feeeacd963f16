package main

import (
	"net"
	"strings"
	"testing"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

// With --tls each REMOTE candidate is verified for its own host: the first
// one's certificate names only "localhost", the second's only 127.0.0.1. A
// shared name would fail the second once the first is gone; its clients are
// served with no handshake error.
func TestTLSCandidatesEachTheirOwnName(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	a := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{CommonName: "localhost", DNSNames: []string{"localhost"}})})
	b := tlstest.Serve(t, tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{CommonName: "ip", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})})
	_, aPort, _ := net.SplitHostPort(a.Addr)
	first := "localhost:" + aPort
	p, addr := startTLS(t, first+","+b.Addr, "--tls-ca", ca.File, "--warm", "1")
	echoOnce(t, addr, "to the first\n")
	if a.Full.Load()+a.Resumed.Load() == 0 || b.Accepted.Load() != 0 {
		t.Fatalf("handshakes: first %d, second accepted %d; want the first to serve, the second untouched", a.Full.Load()+a.Resumed.Load(), b.Accepted.Load())
	}
	a.Close()
	for i := 0; i < 3; i++ {
		echoOnce(t, addr, "to the second\n")
	}
	// Before stopping: a refill still in its handshake when the forwarder
	// exits is cut off, and the server counts that as a handshake error.
	if errs := b.HandshakeErrors(); len(errs) != 0 || b.Full.Load() == 0 {
		t.Errorf("second candidate: %d full handshakes, errors %v; want some, none", b.Full.Load(), errs)
	}
	r := p.stop(t)
	if !strings.Contains(r.stderr, "warmport: upstream "+first+" is down") {
		t.Errorf("stderr: want the down line of %s\n%s", first, r.stderr)
	}
}
