// Package pki makes throwaway certificates in memory: a CA and the server
// or client certificates it signs, or a certificate that signs itself. It
// is what `warmport bench --tls` trusts its embedded upstream by, what the
// peer bench gives its TLS peers, and what the tests' TLS servers use.
// Keys are ECDSA P-256: cheap to make, and every peer speaks it.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"time"
)

// Options say what a certificate is for. Zero NotBefore and NotAfter mean
// valid from an hour ago (clocks differ a little) for a day.
type Options struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	Client     bool // a client certificate (clientAuth) instead of a server's
	NotBefore  time.Time
	NotAfter   time.Time
}

// Cert is a certificate with its key: for crypto/tls (TLS, Leaf set) and
// as PEM for programs that read files.
type Cert struct {
	TLS     tls.Certificate
	CertPEM []byte
	KeyPEM  []byte // PKCS #8
}

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA named name.
func NewCA(name string) (*CA, error) {
	der, key, err := create(Options{CommonName: name}, nil, true)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

// PEM is the CA's certificate as PEM, for a file clients trust.
func (ca *CA) PEM() []byte { return pemBlock("CERTIFICATE", ca.Cert.Raw) }

// Pool is a pool of roots holding the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue makes a certificate signed by ca.
func (ca *CA) Issue(o Options) (*Cert, error) { return issue(o, ca) }

// SelfSigned makes a certificate that signs itself: a client trusts it by
// adding its Leaf to its roots.
func SelfSigned(o Options) (*Cert, error) { return issue(o, nil) }

func issue(o Options, ca *CA) (*Cert, error) {
	der, key, err := create(o, ca, false)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &Cert{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}
	if c.TLS, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		return nil, err
	}
	return c, nil
}

// create makes a key and a certificate for it, signed by ca (nil: by the
// key itself), for a CA or for o's use.
func create(o Options, ca *CA, isCA bool) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := template(o)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case isCA:
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	case o.Client:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	return der, key, err
}

// template is what every certificate here shares: a random serial (two
// certificates of one CA must never share one), the names, the validity.
func template(o Options) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.CommonName},
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	return tmpl, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
