package tlsup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

func TestDialVerification(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	wrongCA := tlstest.NewCA(t, "wrong CA")
	client := ca.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
	strangerClient := wrongCA.Issue(t, tlstest.LeafOptions{CommonName: "stranger", Client: true})
	local := []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, tt := range []struct {
		name        string
		srv         tlstest.ServerOptions
		o           Options
		host        string // REMOTE's host; "" means 127.0.0.1
		wantVersion uint16 // on success
		wantErr     string // a substring of Describe's words; "" means success
	}{
		{name: "TLS 1.3, IP SAN", wantVersion: tls.VersionTLS13},
		{name: "TLS 1.2-only server", srv: tlstest.ServerOptions{MaxVersion: tls.VersionTLS12}, wantVersion: tls.VersionTLS12},
		{name: "server name", o: Options{ServerName: "db.internal"}, wantVersion: tls.VersionTLS13,
			srv: tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{DNSNames: []string{"db.internal"}})}},
		{name: "wrong CA", srv: tlstest.ServerOptions{Cert: wrongCA.Localhost(t)},
			wantErr: `signed by "CN=wrong CA", an authority not trusted here: pass --tls-ca FILE or fix the server's chain`},
		{name: "wrong CA, insecure", srv: tlstest.ServerOptions{Cert: wrongCA.Localhost(t)}, o: Options{Insecure: true}, wantVersion: tls.VersionTLS13},
		{name: "wrong name", srv: tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{DNSNames: []string{"a.example", "b.example"}})},
			wantErr: "the server's certificate is for a.example, b.example, not 127.0.0.1: pass --tls-server-name NAME"},
		{name: "an IP verifies IP SANs, not DNS names", srv: tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{DNSNames: []string{"127.0.0.1"}})},
			wantErr: "not 127.0.0.1: pass --tls-server-name"},
		{name: "a name is not an IP SAN", host: "localhost", srv: tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{IPs: local})},
			wantErr: "for 127.0.0.1, not localhost"},
		{name: "expired", srv: tlstest.ServerOptions{Cert: ca.Issue(t, tlstest.LeafOptions{IPs: local,
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})},
			wantErr: "the server's certificate expired on"},
		{name: "client certificate required, TLS 1.3", srv: tlstest.ServerOptions{ClientCA: ca},
			wantErr: "the server demands a client certificate (alert \"certificate required\"): pass --tls-cert FILE and --tls-key FILE"},
		{name: "client certificate required, TLS 1.2", srv: tlstest.ServerOptions{ClientCA: ca, MaxVersion: tls.VersionTLS12},
			wantErr: "the server demands a client certificate"},
		{name: "mTLS", srv: tlstest.ServerOptions{ClientCA: ca}, o: Options{CertFile: client.CertFile, KeyFile: client.KeyFile}, wantVersion: tls.VersionTLS13},
		{name: "mTLS, TLS 1.2", srv: tlstest.ServerOptions{ClientCA: ca, MaxVersion: tls.VersionTLS12},
			o: Options{CertFile: client.CertFile, KeyFile: client.KeyFile}, wantVersion: tls.VersionTLS12},
		{name: "client certificate of another CA, TLS 1.3", srv: tlstest.ServerOptions{ClientCA: ca},
			o:       Options{CertFile: strangerClient.CertFile, KeyFile: strangerClient.KeyFile},
			wantErr: "the server rejected our client certificate (alert \"unknown certificate authority\")"},
		{name: "client certificate of another CA, TLS 1.2", srv: tlstest.ServerOptions{ClientCA: ca, MaxVersion: tls.VersionTLS12},
			o:       Options{CertFile: strangerClient.CertFile, KeyFile: strangerClient.KeyFile},
			wantErr: "the server rejected our client certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.srv.Cert == nil {
				tt.srv.Cert = ca.Localhost(t)
			}
			if tt.o.CAFile == "" && !tt.o.Insecure {
				tt.o.CAFile = ca.File
			}
			host := tt.host
			if host == "" {
				host = "127.0.0.1"
			}
			s := tlstest.Serve(t, tt.srv)
			c, err := dialTLS(t, s.Addr, tt.o, host)
			if tt.wantErr != "" {
				var he *HandshakeError
				if !errors.As(err, &he) {
					t.Fatalf("Dial: got %v; want a *HandshakeError", err)
				}
				if got := Describe(err); !strings.Contains(got, tt.wantErr) {
					t.Fatalf("Describe: got %q; want it to contain %q", got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: got %v (%s); want success", err, Describe(err))
			}
			if got := c.ConnectionState().Version; got != tt.wantVersion {
				t.Errorf("version: got %x; want %x", got, tt.wantVersion)
			}
			echoOnce(t, c, "ping")
		})
	}
}

// TestDialFailures covers servers that never finish a handshake.
func TestDialFailures(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	for _, tt := range []struct {
		name    string
		handle  func(net.Conn)
		timeout time.Duration
		wantIs  error
		wantErr string
	}{
		{name: "not TLS", handle: func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n"); io.Copy(io.Discard, c) },
			wantErr: `the server does not speak TLS here (it answered "SSH-2"): check REMOTE's port, or drop --tls`},
		{name: "closed at once", handle: func(c net.Conn) { c.(*net.TCPConn).CloseWrite(); io.Copy(io.Discard, c) },
			wantErr: "the server closed the connection during the TLS handshake", wantIs: io.EOF},
		{name: "silent", handle: func(c net.Conn) { io.Copy(io.Discard, c) }, timeout: 100 * time.Millisecond,
			wantErr: "the TLS handshake timed out", wantIs: context.DeadlineExceeded},
		{name: "reset", handle: func(c net.Conn) { c.Read(make([]byte, 1)); c.(*net.TCPConn).SetLinger(0) },
			wantErr: "the server closed the connection during the TLS handshake", wantIs: syscall.ECONNRESET},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := plainServer(t, tt.handle)
			cfg, err := Options{CAFile: ca.File}.Config("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = waitBound
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Dial(ctx, raw, cfg)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Dial: got %v; want an error that is %v", err, tt.wantIs)
			}
			if got := Describe(err); !strings.Contains(got, tt.wantErr) {
				t.Errorf("Describe: got %q; want it to contain %q", got, tt.wantErr)
			}
			if _, err := raw.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("write to raw after a failed Dial: got %v; want net.ErrClosed", err)
			}
		})
	}
}

func TestDescribeUnknown(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("something odd"), "something odd"},
		{&HandshakeError{Err: errors.New("odd")}, "odd"},
		{&HandshakeError{Err: &tls.CertificateVerificationError{Err: x509.SystemRootsError{}}}, "pass --tls-ca FILE, or install the Debian package ca-certificates"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}, "no TLS version warmport speaks"},
		{&HandshakeError{Err: &net.OpError{Op: "remote error", Err: errors.New("tls: unrecognized name")}, ServerName: "db"},
			"does not serve the name db"},
	} {
		if got := Describe(tt.err); !strings.Contains(got, tt.want) || (tt.want == "" && got != "") {
			t.Errorf("Describe(%v): got %q; want it to contain %q", tt.err, got, tt.want)
		}
	}
}

// echoOnce writes msg and reads it back.
func echoOnce(t testing.TB, c io.ReadWriter, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != msg {
		t.Fatalf("echo: got %q, %v; want %q", b, err, msg)
	}
}
