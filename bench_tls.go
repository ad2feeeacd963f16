package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"

	"github.com/urfave/cli/v2"
	"github.com/warmport/warmport/internal/pki"
)

// benchTLS is what bench --tls needs: the forwarders' upstream dialer and
// the direct client's config. The direct client has no session cache: each
// is a new client, as a new process is, and pays the full handshake the
// pool hides.
type benchTLS struct {
	up     *tlsUpstream
	direct *tls.Config
}

// benchTLSFor reads bench's TLS flags. Against the embedded upstream
// (remote "") only --tls applies: its certificate is generated and
// trusted by name, so the other flags have nothing to act on.
func benchTLSFor(c *cli.Context, remote string, embedded *tls.Certificate) (*benchTLS, error) {
	if embedded == nil {
		t, err := tlsFor(c, remote)
		if err != nil || t == nil {
			return nil, err
		}
		direct := t.targets[remote].cfg.Clone() // bench's REMOTE is one address
		direct.ClientSessionCache = nil
		return &benchTLS{up: t, direct: direct}, nil
	}
	for _, n := range tlsFlagNames {
		if c.IsSet(n) {
			return nil, usageErrorf("--%s is for a REMOTE's own TLS server; the embedded upstream's certificate is generated and trusted: drop --%s, or name REMOTE", n, n)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(embedded.Leaf)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	direct := cfg.Clone()
	direct.ClientSessionCache = nil
	up := &tlsUpstream{targets: map[string]tlsTarget{remote: {network: "tcp", addr: remote, cfg: cfg}}}
	return &benchTLS{up: up, direct: direct}, nil
}

// benchCertificate is a fresh self-signed certificate for localhost and
// 127.0.0.1, made in memory, so `bench --tls` needs no file.
func benchCertificate() (*tls.Certificate, error) {
	c, err := pki.SelfSigned(pki.Options{CommonName: "warmport bench", DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
	if err != nil {
		return nil, err
	}
	return &c.TLS, nil
}
