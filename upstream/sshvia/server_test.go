package sshvia

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testServer is an in-process SSH server that forwards direct-tcpip
// channels, with switches for the failures a tunnel must survive.
type testServer struct {
	t       testing.TB
	ln      net.Listener
	addr    string
	hostKey ssh.Signer
	authKey ssh.PublicKey

	mu     sync.Mutex
	refuse string             // reject direct-tcpip, administratively prohibited, with this message
	conns  map[net.Conn]*bool // live connections; *bool: keepalives go unanswered
	wg     sync.WaitGroup
	closed bool
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startServer listens on addr ("127.0.0.1:0" for a free port) and accepts
// publickey auth with authKey.
func startServer(t testing.TB, addr string, hostKey ssh.Signer, authKey ssh.PublicKey) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, addr: ln.Addr().String(), hostKey: hostKey, authKey: authKey, conns: map[net.Conn]*bool{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// stop closes the listener and every connection, and waits for them.
func (s *testServer) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.ln.Close()
	s.drop()
	s.wg.Wait()
}

// drop closes every connection's socket, as a crashed server would.
func (s *testServer) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// mute stops answering keepalives on the connections open now.
func (s *testServer) mute() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.conns {
		*m = true
	}
}

func (s *testServer) setRefuse(msg string) {
	s.mu.Lock()
	s.refuse = msg
	s.mu.Unlock()
}

func (s *testServer) serve() {
	defer s.wg.Done()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if s.authKey != nil && string(k.Marshal()) == string(s.authKey.Marshal()) {
				return nil, nil
			}
			return nil, io.ErrUnexpectedEOF
		},
	}
	cfg.AddHostKey(s.hostKey)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		muted := new(bool)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = muted
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c, cfg, muted)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *testServer) isMuted(m *bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *m
}

func (s *testServer) handle(c net.Conn, cfg *ssh.ServerConfig, muted *bool) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go func() {
		for r := range reqs {
			if r.WantReply && !s.isMuted(muted) {
				r.Reply(false, nil) // as OpenSSH answers keepalive@openssh.com
			}
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "direct-tcpip" {
			nc.Reject(ssh.UnknownChannelType, "only direct-tcpip")
			continue
		}
		s.mu.Lock()
		refuse := s.refuse
		s.mu.Unlock()
		if refuse != "" {
			nc.Reject(ssh.Prohibited, refuse)
			continue
		}
		var m struct {
			Host  string
			Port  uint32
			OHost string
			OPort uint32
		}
		if err := ssh.Unmarshal(nc.ExtraData(), &m); err != nil {
			nc.Reject(ssh.ConnectionFailed, "bad request")
			continue
		}
		tc, err := net.Dial("tcp", net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port))))
		if err != nil {
			nc.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			tc.Close()
			continue
		}
		go ssh.DiscardRequests(creqs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			relayChannel(ch, tc.(*net.TCPConn))
		}()
	}
}

// relayChannel copies both ways with half-close, as sshd does.
func relayChannel(ch ssh.Channel, tc *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		io.Copy(tc, ch)
		tc.CloseWrite()
		close(done)
	}()
	io.Copy(ch, tc)
	ch.CloseWrite()
	<-done
	ch.Close()
	tc.Close()
}

// testEnv is a home directory with a user key, a known_hosts file and a
// Config that reads nothing of the real user's.
type testEnv struct {
	home    string
	key     ssh.PublicKey
	keyFile string
	known   string
	cfg     Config
	logs    chan string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "")
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{home: home, known: filepath.Join(home, ".ssh", "known_hosts"), logs: make(chan string, 64)}
	e.key, e.keyFile = writeKey(t, filepath.Join(home, ".ssh", "id_ed25519"), "")
	e.cfg = Config{
		Home: home, SSHConfig: "none", AgentSock: "none", DialTimeout: 5 * time.Second,
		Logf: func(f string, a ...any) {
			line := fmt.Sprintf(f, a...)
			t.Log(line)
			select {
			case e.logs <- line:
			default:
			}
		},
	}
	return e
}

// writeKey writes a new ed25519 key in OpenSSH format, encrypted when
// passphrase is not empty (by ssh-keygen with one KDF round: x/crypto's 16
// rounds take seconds under -race), and returns its signer or, for an
// encrypted key, its public half in a signer-less form.
func writeKey(t testing.TB, file, passphrase string) (ssh.PublicKey, string) {
	t.Helper()
	if passphrase != "" {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-a", "1", "-N", passphrase, "-C", "test", "-f", file).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen (Debian: openssh-client): %v: %s", err, out)
		}
		pub := readPub(file + ".pub")
		if pub == nil {
			t.Fatalf("no public key in %s.pub", file)
		}
		return pub, file
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey(), file
}

// trust adds key as the host key of 127.0.0.1:port to known_hosts.
func (e *testEnv) trust(t testing.TB, port int, key ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(e.known, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := "[127.0.0.1]:" + strconv.Itoa(port) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits for a log line containing sub.
func (e *testEnv) waitLog(t testing.TB, sub string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-e.logs:
			if strings.Contains(l, sub) {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q in 10s", sub)
			return ""
		}
	}
}
