package main

// End-to-end tests of the relay: bytes, half-close, servers that speak
// first, an upstream that is down and comes up, and the JSON summary.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warmport/warmport/internal/testsrv"
)

// TestHalfCloseConcurrentClients: 100 clients at once send up to 2 MiB,
// shut down their write side, and only then get a reply (the upstream's
// sha256 of the request and a payload derived from it). Every byte is
// checked both ways, and the summary counts exactly what moved.
func TestHalfCloseConcurrentClients(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, replyAfterEOF)
	p := startWarmport(t, "forward", "--json", "0", up.addr())
	addr := p.waitReady(t)

	seed := uint64(time.Now().UnixNano())
	t.Logf("payload seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	const clients = 100
	type result struct {
		client             string
		reqSize, replySize int64
		sent, got          int64
		err                error
		seed               [32]byte
	}
	res := make([]result, clients)
	for i := range res {
		r := &res[i]
		switch i {
		case 0: // nothing at all: the reply is the hash of nothing
		case 1:
			r.reqSize = 8
		case 2:
			r.reqSize, r.replySize = 2<<20, 2<<20
		default:
			r.reqSize, r.replySize = 8+rnd.Int64N(2<<20-8+1), rnd.Int64N(1<<20+1)
		}
		for j := range r.seed {
			r.seed[j] = byte(rnd.Uint32())
		}
	}
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			r.client, r.sent, r.got, r.err = exchange(addr, r.seed, r.reqSize, r.replySize)
		}(&res[i])
	}
	wg.Wait()
	var sent, got int64
	defer func() { t.Logf("%d clients sent %d bytes and received %d", clients, sent, got) }()
	for i, r := range res {
		if r.err != nil {
			t.Errorf("client %d (request %d bytes, reply %d): %v", i, r.reqSize, r.replySize, r.err)
		}
		sent += r.sent
		got += r.got
	}
	if t.Failed() {
		p.stop(t)
		t.FailNow()
	}

	sum := parseSummary(t, p.stop(t).stdout)
	if got, want := sum.Totals.Connections, uint64(clients); got != want {
		t.Errorf("totals.connections: got %d; want %d", got, want)
	}
	if sum.Totals.Failed != 0 {
		t.Errorf("totals.failed: got %d; want 0", sum.Totals.Failed)
	}
	if sum.Totals.BytesUp != sent || sum.Totals.BytesDown != got {
		t.Errorf("totals bytes up/down: got %d/%d; want %d/%d", sum.Totals.BytesUp, sum.Totals.BytesDown, sent, got)
	}
	for _, r := range res {
		rec := sum.record(t, r.client)
		if rec.BytesUp != r.sent || rec.BytesDown != r.got || rec.ClosedBy != "client" {
			t.Errorf("record of %s: got up %d down %d closed_by %q; want up %d down %d closed_by %q",
				r.client, rec.BytesUp, rec.BytesDown, rec.ClosedBy, r.sent, r.got, "client")
		}
	}
}

// TestServerSpeaksFirst: a banner the upstream writes on accept reaches the
// client unchanged and exactly once, from a warm (pre-dialed) connection
// whose banner waited in the socket, and from a cold one.
func TestServerSpeaksFirst(t *testing.T) {
	t.Parallel()
	const greeting = "SSH-2.0-OpenSSH_9.6\r\n"
	for _, tc := range []struct {
		name       string
		flags      []string
		waitWarm   int    // idle warm connections to wait for before the first client
		wantSource string // of the first client
	}{
		{"default warm pool", nil, 2, "warm"},
		{"warm 0", []string{"--warm", "0"}, 0, "cold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, banner(greeting))
			args := append(append([]string{"forward", "--json"}, tc.flags...), "0", up.addr())
			p := startWarmport(t, args...)
			addr := p.waitReady(t)
			p.waitPoolIdle(t, tc.waitWarm)

			var clients []string
			for i := range 3 {
				c, err := dialClient(addr)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				clients = append(clients, c.LocalAddr().String())
				buf := make([]byte, len(greeting))
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != greeting {
					t.Fatalf("client %d: banner: got %q, %v; want %q", i, buf, err, greeting)
				}
				msg := "ping " + strconv.Itoa(i) + "\n"
				io.WriteString(c, msg)
				c.CloseWrite()
				rest, err := io.ReadAll(c)
				c.Close()
				if err != nil || string(rest) != msg {
					t.Fatalf("client %d: after the banner: got %q, %v; want %q, <nil> (the banner exactly once)", i, rest, err, msg)
				}
			}
			sum := parseSummary(t, p.stop(t).stdout)
			for i, cl := range clients {
				rec := sum.record(t, cl)
				if i == 0 && rec.Source != tc.wantSource {
					t.Errorf("source of the first client: got %q; want %q", rec.Source, tc.wantSource)
				}
				if tc.wantSource == "cold" && rec.Source != "cold" {
					t.Errorf("source of client %d with --warm 0: got %q; want %q", i, rec.Source, "cold")
				}
				if want := int64(len(greeting) + len("ping 0\n")); rec.BytesDown != want {
					t.Errorf("bytes_down of client %d: got %d; want %d", i, rec.BytesDown, want)
				}
			}
		})
	}
}

// TestUpstreamDownThenUp: while nothing listens upstream a client is closed
// at once and the forwarder lives on; once the upstream is up the next
// client just works. The summary counts the failure.
func TestUpstreamDownThenUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default warm pool", nil},
		{"warm 0", []string{"--warm", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			remote := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsrv.FreePort(t)))
			args := append(append([]string{"forward", "--json", "--dial-timeout", "1m"}, tc.flags...), "0", remote)
			p := startWarmport(t, args...)
			addr := p.waitReady(t)

			// The failed dial resets the client, maybe before its connect
			// returned: its own port finds its record either way.
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: testsrv.FreePort(t)}
			failed := local.String()
			d := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
			n := 0
			c, err := d.Dial("tcp", addr)
			if err == nil {
				c.SetDeadline(time.Now().Add(10 * time.Second)) // far below --dial-timeout 1m
				n, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("client with the upstream down: got %d bytes, %v; want a reset at once (never a clean EOF)", n, err)
			}
			if p.exited() {
				t.Fatalf("warmport exited after a failed dial\nstderr:\n%s", p.Output())
			}

			startUpstreamOn(t, remote, echo)
			ok := echoOnce(t, addr, "hello")

			sum := parseSummary(t, p.stop(t).stdout)
			if sum.Totals.Connections != 2 || sum.Totals.Failed != 1 {
				t.Errorf("totals connections/failed: got %d/%d; want 2/1", sum.Totals.Connections, sum.Totals.Failed)
			}
			if rec := sum.record(t, failed); rec.ClosedBy != "error" || rec.Error == "" {
				t.Errorf("failed client's record: got closed_by %q error %q; want %q and a message", rec.ClosedBy, rec.Error, "error")
			}
			if rec := sum.record(t, ok); rec.ClosedBy != "client" || rec.BytesUp != 5 || rec.BytesDown != 5 {
				t.Errorf("next client's record: got closed_by %q up %d down %d; want %q up 5 down 5", rec.ClosedBy, rec.BytesUp, rec.BytesDown, "client")
			}
		})
	}
}

// TestJSONSummary: the byte counts of --json are exact per connection and
// in totals, the source says warm or cold, and every key of the contract is
// there.
func TestJSONSummary(t *testing.T) {
	t.Parallel()
	sizes := []struct{ req, reply int64 }{{0, 0}, {8, 0}, {100_000, 12_345}, {1 << 20, 1}, {8, 300_000}}
	for _, tc := range []struct {
		name     string
		flags    []string
		waitWarm int
		first    string // source of the first connection
	}{
		{"warm 2", []string{"--warm", "2"}, 2, "warm"},
		{"warm 0", []string{"--warm", "0"}, 0, "cold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, replyAfterEOF)
			args := append(append([]string{"forward", "--json"}, tc.flags...), "0", up.addr())
			p := startWarmport(t, args...)
			addr := p.waitReady(t)
			p.waitPoolIdle(t, tc.waitWarm)

			type conn struct {
				client    string
				sent, got int64
			}
			var conns []conn
			var sent, got int64
			for i, sz := range sizes {
				cl, s, g, err := exchange(addr, [32]byte{byte(i)}, sz.req, sz.reply)
				if err != nil {
					t.Fatalf("exchange %d: %v", i, err)
				}
				if want := 32 + sz.reply; s != sz.req || g != want {
					t.Fatalf("exchange %d moved %d/%d bytes; want %d/%d", i, s, g, sz.req, want)
				}
				conns = append(conns, conn{cl, s, g})
				sent, got = sent+s, got+g
			}
			r := p.stop(t)
			sum := parseSummary(t, r.stdout)

			t.Run("bytes", func(t *testing.T) {
				for _, c := range conns {
					rec := sum.record(t, c.client)
					if rec.BytesUp != c.sent || rec.BytesDown != c.got {
						t.Errorf("bytes_up/bytes_down of %s: got %d/%d; want %d/%d", c.client, rec.BytesUp, rec.BytesDown, c.sent, c.got)
					}
				}
				tot := sum.Totals
				if tot.Connections != uint64(len(sizes)) || tot.Failed != 0 || tot.BytesUp != sent || tot.BytesDown != got {
					t.Errorf("totals: got %+v; want {Connections:%d Failed:0 BytesUp:%d BytesDown:%d}", tot, len(sizes), sent, got)
				}
			})
			t.Run("records", func(t *testing.T) {
				if sum.Local != addr || sum.Remote != up.addr() {
					t.Errorf("local/remote: got %s/%s; want %s/%s", sum.Local, sum.Remote, addr, up.addr())
				}
				if sum.Ended.Before(sum.Started) || sum.Dropped != 0 {
					t.Errorf("started %v ended %v dropped %d; want ended after started and dropped 0", sum.Started, sum.Ended, sum.Dropped)
				}
				var ids []uint64
				for i, c := range conns {
					rec := sum.record(t, c.client)
					ids = append(ids, rec.ID)
					if rec.Upstream == "" || rec.ClosedBy != "client" || rec.DurationMS < 0 || rec.DialMS < 0 ||
						rec.Started.Before(sum.Started) || rec.Started.After(sum.Ended) {
						t.Errorf("record %d: got %+v; want an upstream, closed_by client, times within the session", i, rec)
					}
					switch want := tc.first; {
					case i == 0 && rec.Source != want:
						t.Errorf("source of the first connection: got %q; want %q", rec.Source, want)
					case want == "cold" && rec.Source != "cold":
						t.Errorf("source of connection %d with --warm 0: got %q; want %q", i, rec.Source, "cold")
					case !slices.Contains([]string{"warm", "cold"}, rec.Source):
						t.Errorf("source of connection %d: got %q; want warm or cold", i, rec.Source)
					}
				}
				if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
					t.Errorf("ids: got %v; want distinct and in order", ids)
				}
				if got := sum.Pool.Hits + sum.Pool.Misses; got != uint64(len(sizes)) {
					t.Errorf("pool hits+misses: got %d; want %d (one per connection)", got, len(sizes))
				}
			})
			t.Run("keys", func(t *testing.T) { checkContractKeys(t, r.stdout) })
		})
	}
}

// Keys of the JSON summary in the contract (DESIGN.md section 1).
var (
	summaryKeys = []string{"local", "remote", "started", "ended", "connections", "dropped", "totals", "pool"}
	recordKeys  = []string{"id", "client", "upstream", "source", "dial_ms", "started", "duration_ms",
		"bytes_up", "bytes_down", "closed_by", "error"}
	totalsKeys = []string{"connections", "failed", "denied", "bytes_up", "bytes_down"}
	poolKeys   = []string{"hits", "misses", "stale", "evicted", "expired", "reused", "dials"}
)

// checkContractKeys checks that the JSON summary on stdout has every key of
// the contract, at every level. Extra keys do not break scripts: they are
// logged, not failed.
func checkContractKeys(t *testing.T, stdout string) {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatal("no JSON on stdout")
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	checkKeys(t, "summary", m, summaryKeys)
	obj := func(k string) map[string]any {
		o, ok := m[k].(map[string]any)
		if !ok {
			t.Errorf("%q: got %T; want an object", k, m[k])
		}
		return o
	}
	checkKeys(t, "totals", obj("totals"), totalsKeys)
	checkKeys(t, "pool", obj("pool"), poolKeys)
	conns, ok := m["connections"].([]any)
	if !ok || len(conns) == 0 {
		t.Fatalf("connections: got %v; want a non-empty list", m["connections"])
	}
	// One message per distinct problem, not one per record.
	byMissing := map[string][]int{}
	for i, c := range conns {
		rec, _ := c.(map[string]any)
		if missing := missingKeys(rec, recordKeys); len(missing) > 0 {
			k := fmt.Sprint(missing)
			byMissing[k] = append(byMissing[k], i)
		}
		if i == 0 {
			logExtraKeys(t, "connections[0]", rec, recordKeys)
		}
	}
	for missing, idx := range byMissing {
		t.Errorf("connections %v of %d: missing keys %s; want all of %v", idx, len(conns), missing, recordKeys)
	}
}

func checkKeys(t *testing.T, where string, m map[string]any, want []string) {
	t.Helper()
	if missing := missingKeys(m, want); len(missing) > 0 {
		t.Errorf("%s: missing keys %v; want all of %v (got %v)", where, missing, want, keys(m))
	}
	logExtraKeys(t, where, m, want)
}

func missingKeys(m map[string]any, want []string) []string {
	var missing []string
	for _, k := range want {
		if _, ok := m[k]; !ok {
			missing = append(missing, k)
		}
	}
	return missing
}

// logExtraKeys logs the keys the contract does not have.
func logExtraKeys(t *testing.T, where string, m map[string]any, want []string) {
	t.Helper()
	for _, k := range keys(m) {
		if !slices.Contains(want, k) {
			t.Logf("%s: key %q is not in the contract (allowed: extra keys do not break scripts)", where, k)
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestStalePooledConnections: a pooled connection the upstream closed while
// idle is never handed to a client, and one that read the client's first
// byte and reset is not replayed: the client sees the reset.
func TestStalePooledConnections(t *testing.T) {
	t.Parallel()
	t.Run("closed while idle", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, closeIdle(200*time.Millisecond))
		p := startWarmport(t, "forward", "--json", "--warm", "2", "--pool-ttl", "10m", "0", up.addr())
		addr := p.waitReady(t)
		up.WaitAccepted(t, 2)
		up.WaitOpen(t, 0) // both warm connections are closed at the upstream
		client := echoOnce(t, addr, "hello")
		sum := parseSummary(t, p.stop(t).stdout)
		if rec := sum.record(t, client); rec.ClosedBy != "client" || rec.BytesUp != 5 || rec.BytesDown != 5 {
			t.Errorf("record: got closed_by %q up %d down %d; want %q, 5, 5", rec.ClosedBy, rec.BytesUp, rec.BytesDown, "client")
		}
		if sum.Pool.Stale < 2 {
			t.Errorf("pool.stale: got %d; want at least 2 (both warm connections were dead)", sum.Pool.Stale)
		}
	})
	// A server that read the first byte and reset may have acted on it: no
	// replay (a request is never delivered twice); the client sees the reset.
	t.Run("reads the first byte and resets", func(t *testing.T) {
		t.Parallel()
		up := startUpstream(t, resetFirst(2))
		p := startWarmport(t, "forward", "--json", "--warm", "2", "--pool-ttl", "10m", "0", up.addr())
		addr := p.waitReady(t)
		up.WaitAccepted(t, 2) // the two doomed ones are the pool's
		c, err := dialClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		client := c.LocalAddr().String()
		c.Write([]byte("hello"))
		if n, err := c.Read(make([]byte, 8)); n != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read %d bytes, %v; want a reset", n, err)
		}
		c.Close()
		sum := parseSummary(t, p.stop(t).stdout)
		if rec := sum.record(t, client); rec.ClosedBy != "error" || rec.Source != "warm" {
			t.Errorf("record: got closed_by %q source %q; want error, warm (not replayed)", rec.ClosedBy, rec.Source)
		}
	})
}
