// Package tlstest makes what tests of TLS upstreams need: a CA and
// certificates generated in a temporary directory, and in-process TLS
// servers on 127.0.0.1 with the behaviours a pooled client must survive.
package tlstest

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/warmport/warmport/internal/pki"
)

// CA is a certificate authority for tests (a pki.CA); File holds its PEM
// certificate.
type CA struct {
	*pki.CA
	PEM  []byte
	File string
	Pool *x509.CertPool
	dir  string
}

// Leaf is a certificate issued by a CA, with its PEM files.
type Leaf struct {
	pki.Cert
	CertFile string
	KeyFile  string
}

// LeafOptions say what a Leaf is for. Zero NotBefore/NotAfter mean valid
// from an hour ago for a day.
type LeafOptions = pki.Options

var leaves atomic.Int64 // names the leaves' files

// NewCA makes a CA whose files live in t.TempDir().
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	c, err := pki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{CA: c, PEM: c.PEM(), Pool: c.Pool(), dir: t.TempDir()}
	ca.File = WriteFile(t, ca.dir, "ca.pem", ca.PEM)
	return ca
}

// Issue makes a certificate signed by ca.
func (ca *CA) Issue(t testing.TB, o LeafOptions) *Leaf {
	t.Helper()
	c, err := ca.CA.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{Cert: *c}
	name := "leaf" + strconv.FormatInt(leaves.Add(1), 10)
	l.CertFile = WriteFile(t, ca.dir, name+".pem", l.CertPEM)
	l.KeyFile = WriteFile(t, ca.dir, name+".key", l.KeyPEM)
	return l
}

// Localhost issues a server certificate for localhost and 127.0.0.1.
func (ca *CA) Localhost(t testing.TB) *Leaf {
	t.Helper()
	return ca.Issue(t, LeafOptions{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// WriteFile writes data to dir/name (mode 0600) and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
