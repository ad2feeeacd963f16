package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// What each certificate is made for verifies as crypto/tls verifies it,
// and nothing else does.
func TestVerify(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	server := Options{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	issued := func(o Options) *Cert {
		c, err := ca.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	self, err := SelfSigned(server)
	if err != nil {
		t.Fatal(err)
	}
	selfRoots := x509.NewCertPool()
	selfRoots.AddCert(self.TLS.Leaf)
	expired := server
	expired.NotBefore, expired.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	client := Options{CommonName: "client", Client: true}
	for _, tt := range []struct {
		name  string
		cert  *Cert
		roots *x509.CertPool
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"server by name", issued(server), ca.Pool(), "localhost", x509.ExtKeyUsageServerAuth, true},
		{"server by IP", issued(server), ca.Pool(), "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"server, other name", issued(server), ca.Pool(), "example.com", x509.ExtKeyUsageServerAuth, false},
		{"server, other CA", issued(server), other.Pool(), "localhost", x509.ExtKeyUsageServerAuth, false},
		{"server as a client", issued(server), ca.Pool(), "", x509.ExtKeyUsageClientAuth, false},
		{"expired", issued(expired), ca.Pool(), "localhost", x509.ExtKeyUsageServerAuth, false},
		{"client", issued(client), ca.Pool(), "", x509.ExtKeyUsageClientAuth, true},
		{"client as a server", issued(client), ca.Pool(), "", x509.ExtKeyUsageServerAuth, false},
		{"self-signed, trusted", self, selfRoots, "localhost", x509.ExtKeyUsageServerAuth, true},
		{"self-signed, not trusted", self, ca.Pool(), "localhost", x509.ExtKeyUsageServerAuth, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.TLS.Leaf.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if got := err == nil; got != tt.ok {
				t.Errorf("verifies: got %v (%v); want %v", got, err, tt.ok)
			}
		})
	}
}

// The PEM forms are what programs that read files need: they load back
// into the same certificate and key.
func TestPEM(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(Options{CommonName: "localhost", DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.PEM()) {
		t.Fatal("the CA's PEM holds no certificate")
	}
	if _, err := c.TLS.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Errorf("verify against the CA's PEM: %v", err)
	}
	back, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil || !bytes.Equal(back.Leaf.Raw, c.TLS.Leaf.Raw) {
		t.Errorf("certificate and key from PEM: %v; want the same certificate back", err)
	}
	if ca.Cert.SerialNumber.Cmp(c.TLS.Leaf.SerialNumber) == 0 {
		t.Errorf("the CA and its certificate share serial %v; want each its own", ca.Cert.SerialNumber)
	}
}
