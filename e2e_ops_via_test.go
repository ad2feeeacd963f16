package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/warmport/warmport/internal/testsrv"
)

// Through --via, REMOTE's candidates are each dialed by the SSH server (a
// dead first one is skipped with its down line) and the PROXY header goes
// inside the channel, before the client's bytes, parsed by go-proxyproto's
// strict reader at the target.
func TestViaCandidatesAndProxyHeader(t *testing.T) {
	s := newViaSSHD(t)
	headers := make(chan string, 8)
	up := startUpstream(t, func(c *net.TCPConn, _ func()) {
		c.SetDeadline(time.Now().Add(ioTimeout))
		br := bufio.NewReader(c)
		if _, err := br.Peek(1); err != nil {
			return // a warm channel closed unused at exit
		}
		hdr, err := proxyproto.Read(br)
		if err != nil {
			headers <- "error: " + err.Error()
			return
		}
		headers <- fmt.Sprintf("%s -> %s", hdr.SourceAddr, hdr.DestinationAddr)
		io.Copy(c, br)
		c.CloseWrite()
	})
	dead := fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
	args := append(append([]string{"forward", "--json", "-q", "--warm", "1", "--proxy-protocol", "v2"}, s.args()...), "127.0.0.1:0", dead+","+up.addr())
	p := startWarmportEnv(t, s.env(), args...)
	addr := p.waitReady(t)
	client := echoOnce(t, addr, "hello through the second candidate\n")
	select {
	case h := <-headers:
		if want := client + " -> " + addr; h != want {
			t.Errorf("target's PROXY header: got %s; want %s", h, want)
		}
	case <-time.After(ioTimeout):
		t.Fatal("the target saw no connection with a header")
	}
	r := p.stop(t)
	if !strings.Contains(r.stderr, "warmport: upstream "+dead+" is down") {
		t.Errorf("stderr: want the down line of %s\n%s", dead, r.stderr)
	}
	sum := parseSummary(t, r.stdout)
	if rec := sum.record(t, client); rec.BytesUp != int64(len("hello through the second candidate\n")) || rec.Upstream != up.addr() {
		t.Errorf("record: bytes_up %d, upstream %s; want the client's bytes only, %s", rec.BytesUp, rec.Upstream, up.addr())
	}
}
