package tlsup

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Options are the user's TLS choices for one REMOTE. The zero value verifies
// the server against the system's roots for REMOTE's host.
type Options struct {
	ServerName string // name to verify and send as SNI; "" means REMOTE's host
	CAFile     string // PEM bundle replacing the system roots; "" means system roots
	CertFile   string // client certificate (PEM) for mTLS; may hold the key too
	KeyFile    string // its private key (PEM); "" means the key is in CertFile
	Insecure   bool   // no verification at all (Warning says so)
}

// sessionCacheSize bounds the client session cache: one entry per server name
// is what resumption needs; the room is for a REMOTE with several names.
const sessionCacheSize = 64

// Config checks o and the files it names and returns the client config for
// REMOTE's host remoteHost ("" for a unix: REMOTE): verification on unless
// Insecure (the system roots, or CAFile's), the name from ServerName or
// remoteHost (an IP address verifies against the certificate's IP SANs and
// sends no SNI), TLS 1.2 and 1.3, and a session cache so that dials after the
// first resume. Its errors are one line naming the flag to fix: usage errors.
func (o Options) Config(remoteHost string) (*tls.Config, error) {
	name, err := o.serverName(remoteHost)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		ServerName:         name,
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS13,
		ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize),
		InsecureSkipVerify: o.Insecure,
	}
	if o.CAFile != "" {
		if o.Insecure {
			return nil, errors.New("--tls-insecure turns verification off, so --tls-ca would be ignored: pass one of them")
		}
		if cfg.RootCAs, err = loadCA(o.CAFile); err != nil {
			return nil, err
		}
	}
	cert, err := o.clientCert()
	if err != nil {
		return nil, err
	}
	cfg.GetClientCertificate = clientCertFunc(cert)
	return cfg, nil
}

// Warning returns the one line to print for these options ("" for none): an
// unverified connection is readable and changeable by anyone on the path.
func (o Options) Warning() string {
	if !o.Insecure {
		return ""
	}
	return "--tls-insecure: the server's certificate is not verified; anyone on the path can read and change the traffic"
}

// serverName picks the name to verify: ServerName, else remoteHost without
// brackets or an IPv6 zone (a certificate names no zone).
func (o Options) serverName(remoteHost string) (string, error) {
	if o.ServerName != "" {
		n := o.ServerName
		if strings.ContainsAny(n, " \t/") || strings.Count(n, ":") == 1 {
			return "", fmt.Errorf("--tls-server-name %q: give the name in the server's certificate, without a port or path", n)
		}
		return strings.Trim(n, "[]"), nil
	}
	host := strings.Trim(remoteHost, "[]")
	if i := strings.IndexByte(host, '%'); i >= 0 && net.ParseIP(host[:i]) != nil {
		host = host[:i]
	}
	if host == "" && !o.Insecure {
		return "", errors.New("--tls to a unix: REMOTE has no host name to verify: pass --tls-server-name NAME (the name in the server's certificate)")
	}
	return host, nil
}

// loadCA reads a PEM bundle, refusing one with no certificate or a
// certificate that does not parse (x509.CertPool.AppendCertsFromPEM would skip
// it silently and verification would fail later, far from the cause).
func loadCA(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %v", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca %s: certificate %d does not parse: %v", file, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate (-----BEGIN CERTIFICATE-----): pass the CA's certificate bundle", file)
	}
	return pool, nil
}

// clientCert loads the client certificate and key, if any. A CertFile that
// holds its key too needs no KeyFile, as with stunnel's cert= and curl's --cert.
func (o Options) clientCert() (*tls.Certificate, error) {
	switch {
	case o.CertFile == "" && o.KeyFile == "":
		return nil, nil
	case o.CertFile == "":
		return nil, fmt.Errorf("--tls-key %s needs --tls-cert FILE (the client certificate it belongs to)", o.KeyFile)
	}
	certPEM, err := os.ReadFile(o.CertFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %v", err)
	}
	if !hasBlock(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("--tls-cert %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", o.CertFile)
	}
	keyFile, keyPEM := o.KeyFile, certPEM
	if keyFile == "" {
		if !hasKey(certPEM) {
			return nil, fmt.Errorf("--tls-cert %s holds no private key: pass --tls-key FILE", o.CertFile)
		}
		keyFile = o.CertFile
	} else if keyPEM, err = os.ReadFile(keyFile); err != nil {
		return nil, fmt.Errorf("--tls-key: %v", err)
	}
	if encrypted(keyPEM) {
		return nil, fmt.Errorf("--tls-key %s is encrypted and warmport cannot ask for its passphrase: decrypt it (openssl pkey -in %s -out PLAIN.key)", keyFile, keyFile)
	}
	if !hasKey(keyPEM) {
		return nil, fmt.Errorf("--tls-key %s holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("--tls-key %s is not the key of --tls-cert %s: pass the matching pair", keyFile, o.CertFile)
		}
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %v", o.CertFile, keyFile, err)
	}
	return &cert, nil
}

// clientCertFunc offers cert (nil: none) whenever the server asks, even when
// the server's list of acceptable CAs does not name its issuer: the server
// decides, as with openssl and curl, and a CA list that names only a root
// would otherwise make Go send nothing. It also notes, for Describe, that the
// server asked (see handshakeInfo).
func clientCertFunc(cert *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if hi, ok := cri.Context().Value(handshakeKey{}).(*handshakeInfo); ok {
			hi.certRequested = true
			hi.certSent = cert != nil
		}
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
}

// handshakeKey keys a *handshakeInfo in a handshake's context.
type handshakeKey struct{}

// handshakeInfo is what one handshake learned beyond its error.
type handshakeInfo struct {
	certRequested bool // the server asked for a client certificate
	certSent      bool // and we had one to send
}

func withHandshakeInfo(ctx context.Context) (context.Context, *handshakeInfo) {
	hi := new(handshakeInfo)
	return context.WithValue(ctx, handshakeKey{}, hi), hi
}

func hasBlock(data []byte, typ string) bool {
	return bytes.Contains(data, []byte("-----BEGIN "+typ+"-----"))
}

func hasKey(data []byte) bool {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return true
		}
	}
}

// encrypted tells a passphrase-protected key: PKCS#8 "ENCRYPTED PRIVATE KEY"
// or the legacy OpenSSL "Proc-Type: 4,ENCRYPTED" header.
func encrypted(data []byte) bool {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return true
		}
	}
}
