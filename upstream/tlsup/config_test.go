package tlsup

import (
	"crypto/tls"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warmport/warmport/upstream/tlsup/tlstest"
)

func TestConfig(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	other := tlstest.NewCA(t, "other CA")
	client := ca.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
	otherClient := other.Issue(t, tlstest.LeafOptions{CommonName: "client", Client: true})
	dir := t.TempDir()
	write := func(name string, data ...[]byte) string {
		return tlstest.WriteFile(t, dir, name, []byte(strings.Join(bytesToStrings(data), "")))
	}
	combined := write("combined.pem", client.CertPEM, client.KeyPEM)
	pkcs8Enc := write("enc8.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	legacyEnc := write("encrsa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: []byte{1, 2, 3}}))
	badCert := write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))
	keyOnly := client.KeyFile
	missing := filepath.Join(dir, "missing.pem")

	for _, tt := range []struct {
		name     string
		o        Options
		host     string
		wantName string // ServerName of the config
		wantErr  string // "" means no error; else a substring of it
	}{
		{name: "host name", host: "db.example", wantName: "db.example"},
		{name: "IPv4 host", host: "127.0.0.1", wantName: "127.0.0.1"},
		{name: "bracketed IPv6 host", host: "[::1]", wantName: "::1"},
		{name: "IPv6 host with zone", host: "fe80::1%eth0", wantName: "fe80::1"},
		{name: "server name wins", o: Options{ServerName: "redis.internal"}, host: "127.0.0.1", wantName: "redis.internal"},
		{name: "server name with a port", o: Options{ServerName: "redis.internal:6380"}, host: "x", wantErr: "without a port"},
		{name: "unix REMOTE needs a name", host: "", wantErr: "pass --tls-server-name"},
		{name: "unix REMOTE, insecure", o: Options{Insecure: true}, host: "", wantName: ""},
		{name: "CA file", o: Options{CAFile: ca.File}, host: "h", wantName: "h"},
		{name: "CA file missing", o: Options{CAFile: missing}, host: "h", wantErr: "--tls-ca: open " + missing},
		{name: "CA file unreadable (a directory)", o: Options{CAFile: dir}, host: "h", wantErr: "is a directory"},
		{name: "CA file without certificates", o: Options{CAFile: keyOnly}, host: "h", wantErr: "holds no PEM certificate"},
		{name: "CA file with a broken certificate", o: Options{CAFile: badCert}, host: "h", wantErr: "certificate 1 does not parse"},
		{name: "CA file and insecure", o: Options{CAFile: ca.File, Insecure: true}, host: "h", wantErr: "pass one of them"},
		{name: "client pair", o: Options{CertFile: client.CertFile, KeyFile: client.KeyFile}, host: "h", wantName: "h"},
		{name: "client pair in one file", o: Options{CertFile: combined}, host: "h", wantName: "h"},
		{name: "cert without key", o: Options{CertFile: client.CertFile}, host: "h", wantErr: "holds no private key: pass --tls-key FILE"},
		{name: "key without cert", o: Options{KeyFile: client.KeyFile}, host: "h", wantErr: "needs --tls-cert FILE"},
		{name: "cert file missing", o: Options{CertFile: missing, KeyFile: client.KeyFile}, host: "h", wantErr: "--tls-cert: open " + missing},
		{name: "key file missing", o: Options{CertFile: client.CertFile, KeyFile: missing}, host: "h", wantErr: "--tls-key: open " + missing},
		{name: "cert file holds a key only", o: Options{CertFile: keyOnly, KeyFile: keyOnly}, host: "h", wantErr: "holds no PEM certificate"},
		{name: "key file holds a cert only", o: Options{CertFile: client.CertFile, KeyFile: client.CertFile}, host: "h", wantErr: "holds no PEM private key"},
		{name: "mismatched pair", o: Options{CertFile: client.CertFile, KeyFile: otherClient.KeyFile}, host: "h", wantErr: "is not the key of --tls-cert"},
		{name: "PKCS#8 encrypted key", o: Options{CertFile: client.CertFile, KeyFile: pkcs8Enc}, host: "h", wantErr: "is encrypted"},
		{name: "legacy encrypted key", o: Options{CertFile: client.CertFile, KeyFile: legacyEnc}, host: "h", wantErr: "is encrypted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.o.Config(tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Config: got %v; want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("Config: got a multi-line error %q; want one line", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Config: got %v; want no error", err)
			}
			if cfg.ServerName != tt.wantName {
				t.Errorf("ServerName: got %q; want %q", cfg.ServerName, tt.wantName)
			}
			if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 {
				t.Errorf("versions: got %x-%x; want 1.2-1.3", cfg.MinVersion, cfg.MaxVersion)
			}
			if cfg.ClientSessionCache == nil {
				t.Error("ClientSessionCache: got nil; want a cache")
			}
			if cfg.InsecureSkipVerify != tt.o.Insecure {
				t.Errorf("InsecureSkipVerify: got %v; want %v", cfg.InsecureSkipVerify, tt.o.Insecure)
			}
			if got, want := cfg.RootCAs != nil, tt.o.CAFile != ""; got != want {
				t.Errorf("RootCAs set: got %v; want %v", got, want)
			}
		})
	}
}

func TestWarning(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{Insecure: true}, "--tls-insecure: the server's certificate is not verified"},
	} {
		got := tt.o.Warning()
		if (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) || strings.Contains(got, "\n") {
			t.Errorf("Warning(%+v): got %q; want one line starting %q", tt.o, got, tt.want)
		}
	}
}

func bytesToStrings(bs [][]byte) []string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = string(b)
	}
	return s
}
