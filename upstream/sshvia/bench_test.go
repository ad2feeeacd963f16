package sshvia

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sink reads to EOF, then answers with the byte count.
func sink(c *net.TCPConn) {
	n, _ := io.Copy(io.Discard, c)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	c.Write(b[:])
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBulk pushes bytes through OpenSSH's sshd with each cipher the
// client could prefer: MB/s, and this process's CPU seconds per GiB (the
// client side: the tunnel, plus the in-process sink's reads).
//
//	go test -run '^$' -bench Bulk -benchtime 256x ./upstream/sshvia/
func BenchmarkBulk(b *testing.B) {
	sinkAddr := startTarget(b, sink)
	e, s := sshdEnv(b)
	s.start()
	for _, c := range []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM, ssh.CipherAES128CTR} {
		b.Run(c, func(b *testing.B) {
			e.cfg.ciphers = []string{c}
			tun := openTunnel(b, e, currentUser(b)+"@"+s.addr())
			ch := dial(b, tun, sinkAddr)
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := ch.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			ch.CloseWrite()
			var got [8]byte
			if _, err := io.ReadFull(ch, got[:]); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := binary.BigEndian.Uint64(got[:]); n != uint64(b.N*len(buf)) {
				b.Fatalf("sink got %d bytes; want %d", n, b.N*len(buf))
			}
			gib := float64(b.N*len(buf)) / (1 << 30)
			b.ReportMetric((cpuTime()-cpu).Seconds()/gib, "cpu-s/GiB")
			tun.Close()
		})
	}
	// OpenSSH's own client for comparison: ssh -W carrying the same bytes
	// through its stdin; CPU counts ssh and this process's pipe writes.
	b.Run("openssh-client-"+ssh.CipherAES128GCM, func(b *testing.B) {
		cmd := exec.Command("ssh", "-F", "none", "-W", sinkAddr, "-p", strconv.Itoa(s.port),
			"-c", ssh.CipherAES128GCM, "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+e.known,
			"-o", "IdentityFile=none", currentUser(b)+"@127.0.0.1")
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.cfg.AgentSock)
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatalf("ssh (Debian: openssh-client): %v", err)
		}
		buf := make([]byte, 1<<20)
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		cpu := cpuTime() + childCPU()
		for i := 0; i < b.N; i++ {
			if _, err := in.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		in.Close()
		var got [8]byte
		if _, err := io.ReadFull(out, got[:]); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cmd.Wait()
		if n := binary.BigEndian.Uint64(got[:]); n != uint64(b.N*len(buf)) {
			b.Fatalf("sink got %d bytes; want %d", n, b.N*len(buf))
		}
		gib := float64(b.N*len(buf)) / (1 << 30)
		b.ReportMetric((cpuTime()+childCPU()-cpu).Seconds()/gib, "cpu-s/GiB")
	})
}

// childCPU is the CPU time of this process's waited-for children.
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFirstByte is a new client's time to its first byte back from
// an echo target behind OpenSSH's sshd: on a channel opened ahead (the
// pool's case), on a channel opened for it on the established connection
// (`ssh -L`'s case), and through a fresh `ssh -W` (a ProxyCommand's case);
// on loopback and through a link that delays each direction by 5ms.
//
//	go test -run '^$' -bench FirstByte -benchtime 50x ./upstream/sshvia/
func BenchmarkFirstByte(b *testing.B) {
	echoAddr := startTarget(b, echo)
	e, s := sshdEnv(b)
	s.start()
	link := delayLink(b, s.addr(), 5*time.Millisecond)
	e.trust(b, portOf(link), s.hostKey)
	for _, l := range []struct{ name, addr string }{{"loopback", s.addr()}, {"rtt10ms", link}} {
		tun := openTunnel(b, e, currentUser(b)+"@"+l.addr)
		b.Run(l.name+"/pooled-channel", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ch := dial(b, tun, echoAddr)
				b.StartTimer()
				ping(b, ch)
				b.StopTimer()
				ch.Close()
				b.StartTimer()
			}
		})
		b.Run(l.name+"/new-channel", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ch, err := tun.Dial(context.Background(), echoAddr)
				if err != nil {
					b.Fatal(err)
				}
				ping(b, ch)
				b.StopTimer()
				ch.Close()
				b.StartTimer()
			}
		})
		b.Run(l.name+"/ssh-L", func(b *testing.B) {
			_, port, _ := net.SplitHostPort(l.addr)
			local := sshL(b, e, port, echoAddr)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", local)
				if err != nil {
					b.Fatal(err)
				}
				ping(b, c)
				b.StopTimer()
				c.Close()
				b.StartTimer()
			}
		})
		b.Run(l.name+"/ssh-W", func(b *testing.B) {
			_, port, _ := net.SplitHostPort(l.addr)
			for i := 0; i < b.N; i++ {
				sshW(b, e, port, echoAddr)
			}
		})
		tun.Close()
	}
}

func ping(b *testing.B, rw io.ReadWriter) {
	var one [1]byte
	if _, err := rw.Write(one[:]); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(rw, one[:]); err != nil {
		b.Fatal(err)
	}
}

// sshW reaches target through a fresh `ssh -W` and pings it once; only the
// process's start to the first byte is timed.
func sshW(b *testing.B, e *testEnv, port, target string) {
	cmd := exec.Command("ssh", "-F", "none", "-W", target, "-p", port,
		"-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+e.known, "-o", "IdentityFile=none",
		currentUser(b)+"@127.0.0.1")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.cfg.AgentSock)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatalf("ssh (Debian: openssh-client): %v", err)
	}
	ping(b, struct {
		io.Reader
		io.Writer
	}{out, in})
	b.StopTimer()
	in.Close()
	cmd.Wait()
	b.StartTimer()
}

// sshL runs `ssh -N -L` to target and returns its local address once ssh
// says it listens; the process ends with the benchmark.
func sshL(b *testing.B, e *testEnv, port, target string) string {
	local := "127.0.0.1:" + strconv.Itoa(freePort(b))
	cmd := exec.Command("ssh", "-v", "-N", "-F", "none", "-L", local+":"+target, "-p", port,
		"-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "UserKnownHostsFile="+e.known,
		"-o", "IdentityFile=none", currentUser(b)+"@127.0.0.1")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+e.cfg.AgentSock)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatalf("ssh (Debian: openssh-client): %v", err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Local forwarding listening on") {
			go io.Copy(io.Discard, stderr) // -v logs every connection
			return local
		}
	}
	b.Fatal("ssh -L exited before listening")
	return ""
}

// delayLink relays to addr, holding every chunk for oneWay in each
// direction: a TCP handshake through it costs a real round trip.
func delayLink(b *testing.B, addr string, oneWay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go delayCopy(u.(*net.TCPConn), c.(*net.TCPConn), oneWay)
			go delayCopy(c.(*net.TCPConn), u.(*net.TCPConn), oneWay)
		}
	}()
	return ln.Addr().String()
}

func delayCopy(dst, src *net.TCPConn, d time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.at)) // the link's delay itself
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		}
		dst.CloseWrite()
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{buf[:n], time.Now().Add(d)}
		}
		if err != nil {
			close(q)
			<-done
			src.Close()
			dst.Close()
			return
		}
	}
}

// BenchmarkIdleChannel reports what one idle pooled channel costs this
// process: heap and goroutine stacks, the watcher included. The target is
// sshd's own port (a greeting-first server in another process), so no
// target goroutine is counted. Run with -benchtime 200x.
func BenchmarkIdleChannel(b *testing.B) {
	e, s := sshdEnv(b, "MaxSessions 0", "MaxStartups 1000")
	s.start()
	target := s.addr()
	tun := openTunnel(b, e, currentUser(b)+"@"+s.addr())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	chs := make([]*Channel, 0, b.N)
	for i := 0; i < b.N; i++ {
		chs = append(chs, dial(b, tun, target))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := float64(b.N)
	b.ReportMetric(float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse)/n, "B/channel")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/channel")
	for _, ch := range chs {
		if err := ch.Probe(); err != nil {
			b.Fatal(err)
		}
	}
}
