package tlsup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// HandshakeError is Dial's error: the handshake's (or the server's verdict
// right after it), with what the handshake learned about client
// certificates, which Describe needs to name the cause.
type HandshakeError struct {
	Err           error
	ServerName    string // the name verified (and sent as SNI unless an IP)
	CertRequested bool   // the server asked for a client certificate
	CertSent      bool   // and one was configured
	// After: the handshake was done; the server failed or closed the
	// connection right after it (a TLS 1.3 server's verdict on our
	// certificate comes then).
	After bool
}

func (e *HandshakeError) Error() string { return "tls handshake: " + e.Err.Error() }
func (e *HandshakeError) Unwrap() error { return e.Err }

// Describe names the cause of a failed TLS dial in words a user can act on,
// in one line without a "warmport:" prefix. Errors it does not know keep Go's
// wording.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var he *HandshakeError
	if !errors.As(err, &he) {
		he = &HandshakeError{Err: err}
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		recordErr tls.RecordHeaderError
		noRoots   x509.SystemRootsError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &noRoots):
		return "this machine has no system CA certificates to verify the server with: pass --tls-ca FILE, or install the Debian package ca-certificates"
	case errors.As(err, &unknownCA):
		issuer := "an unknown authority"
		if unknownCA.Cert != nil {
			issuer = fmt.Sprintf("%q, an authority not trusted here", unknownCA.Cert.Issuer.String())
		}
		return "the server's certificate is signed by " + issuer + ": pass --tls-ca FILE or fix the server's chain"
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the server's certificate is for %s, not %s: pass --tls-server-name NAME", certNames(hostErr.Certificate), hostErr.Host)
	case errors.As(err, &invalid):
		return describeInvalid(invalid)
	case errors.As(err, &recordErr):
		return fmt.Sprintf("the server does not speak TLS here (it answered %q): check REMOTE's port, or drop --tls", printable(recordErr.RecordHeader[:]))
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return describeAlert(strings.TrimPrefix(opErr.Err.Error(), "tls: "), he)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "the TLS handshake timed out: is REMOTE a TLS port? (a longer --dial-timeout helps a slow server)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		if he.After {
			return "the server closed the connection right after the TLS handshake: it may have refused our client certificate, or it closes new connections at once"
		}
		return "the server closed the connection during the TLS handshake: it may not speak TLS on this port, or it refused the name " +
			quoteName(he.ServerName) + " or our client certificate"
	}
	return he.Err.Error()
}

// describeAlert explains an alert the server sent.
func describeAlert(alert string, he *HandshakeError) string {
	switch {
	case he.CertRequested && !he.CertSent && (alert == "certificate required" || alert == "handshake failure" ||
		alert == "bad certificate" || alert == "certificate unknown" || alert == "access denied"):
		return "the server demands a client certificate (alert \"" + alert + "\"): pass --tls-cert FILE and --tls-key FILE"
	case he.CertSent && (alert == "bad certificate" || alert == "unknown certificate authority" || alert == "certificate unknown" ||
		alert == "certificate expired" || alert == "certificate revoked" || alert == "unsupported certificate" ||
		alert == "access denied" || alert == "decrypt error"):
		return "the server rejected our client certificate (alert \"" + alert + "\"): check --tls-cert is valid and signed by a CA the server trusts"
	case alert == "protocol version not supported":
		return "the server offers no TLS version warmport speaks (1.2 or 1.3)"
	case alert == "unrecognized name":
		return "the server does not serve the name " + quoteName(he.ServerName) + " (alert \"unrecognized name\"): pass --tls-server-name NAME"
	case alert == "handshake failure" || alert == "insufficient security":
		return "the server refused the handshake (alert \"" + alert + "\"): no cipher suite or version in common, or it wants another --tls-server-name or a client certificate"
	}
	return "the server ended the handshake with alert \"" + alert + "\""
}

// describeInvalid explains a certificate that verification refused for a
// reason other than its issuer or its names.
func describeInvalid(e x509.CertificateInvalidError) string {
	c := e.Cert
	switch e.Reason {
	case x509.Expired:
		if c != nil && time.Now().Before(c.NotBefore) {
			return fmt.Sprintf("the server's certificate is not valid before %s (is this machine's clock right?)", c.NotBefore.UTC().Format(time.RFC3339))
		}
		if c != nil {
			return fmt.Sprintf("the server's certificate expired on %s: renew it on the server (or check this machine's clock)", c.NotAfter.UTC().Format(time.RFC3339))
		}
		return "the server's certificate has expired or is not yet valid: renew it (or check this machine's clock)"
	case x509.IncompatibleUsage:
		return "the server's certificate is not for TLS servers (extended key usage): reissue it with serverAuth"
	case x509.NotAuthorizedToSign:
		return "the server's chain has a certificate that is not a CA signing another: fix the server's chain"
	}
	return "the server's certificate is invalid: " + e.Error()
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "other names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		if c.Subject.CommonName != "" {
			return "no name at all (only CN " + c.Subject.CommonName + ", which TLS clients no longer check)"
		}
		return "no name at all"
	}
	const most = 5
	if len(names) > most {
		return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
	}
	return strings.Join(names, ", ")
}

func quoteName(n string) string {
	if n == "" {
		return "(none)"
	}
	return n
}

// printable shows a non-TLS server's first bytes ("SSH-2", "HTTP/").
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '.'
		}
		return r
	}, string(b))
}
