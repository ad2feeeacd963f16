package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"

	"github.com/warmport/warmport/internal/pki"
)

// benchPKI is the TLS tests' certificates, made at start: a CA and a server
// certificate it signs for localhost, 127.0.0.1 and the upstream
// namespace's address, as PEM files every peer reads.
type benchPKI struct {
	caFile, certFile, keyFile string
	cert                      tls.Certificate
	roots                     *x509.CertPool
}

func newBenchPKI(dir string) (*benchPKI, error) {
	ca, err := pki.NewCA("peerbench CA")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue(pki.Options{CommonName: "localhost", DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(upIP)}})
	if err != nil {
		return nil, err
	}
	p := &benchPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key"),
		cert: leaf.TLS, roots: ca.Pool()}
	for _, f := range []struct {
		path string
		pem  []byte
	}{{p.caFile, ca.PEM()}, {p.certFile, leaf.CertPEM}, {p.keyFile, leaf.KeyPEM}} {
		if err := os.WriteFile(f.path, f.pem, 0o644); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// serverConfig is a TLS server's config; max 0 means TLS 1.3.
func (p *benchPKI) serverConfig(max uint16) (*tls.Config, error) {
	return &tls.Config{Certificates: []tls.Certificate{p.cert}, MinVersion: tls.VersionTLS12, MaxVersion: max}, nil
}

// clientConfig is a direct client's: verified, no session cache (each
// client new, as a new process is).
func (p *benchPKI) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: "localhost"}
}

// loadPool reads a PEM CA bundle.
func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New(file + ": no PEM certificate")
	}
	return pool, nil
}
