package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warmport/warmport/forward"
	"github.com/warmport/warmport/pool"
	"github.com/warmport/warmport/session"
	"github.com/warmport/warmport/upstream/sshvia"
)

var benchCommand = &cli.Command{
	Name:      "bench",
	Usage:     "measure what the warm pool saves a new client: direct vs warmport --warm 0 vs warmport with the pool",
	ArgsUsage: "[REMOTE]",
	Description: "Runs the real forwarder in-process and times N sequential new clients (connect, send, first byte back)\n" +
		"three ways: straight to the upstream, through warmport without a pool, and through warmport with it.\n" +
		"Without REMOTE it uses an embedded upstream that waits --setup-delay before its first byte, standing in\n" +
		"for a distant server's handshake. Against a real REMOTE it measures the real round trip the pool saves;\n" +
		"a server that does not speak first needs --send (e.g. --send 'HEAD / HTTP/1.0\\r\\n\\r\\n').",
	// Flags: benchFlags.
	OnUsageError: onUsageError,
	Action:       benchAction,
}

// maxBenchClients bounds --clients: clients run one after another, so at the
// default --interval 10000 of them take over four minutes per mode, and
// beyond that a run is better split than waited for.
const maxBenchClients = 10_000

// benchFlags are bench's flags with their bounds (see flagSpec). --warm stops
// at the pool's default bound, which the pooled mode uses.
var benchFlags = append([]flagSpec{
	{Flag: &cli.IntFlag{Name: "clients", Aliases: []string{"n"}, Value: 50, Usage: "`N` new clients per mode, one after another"},
		min: 1, max: maxBenchClients},
	{Flag: &cli.DurationFlag{Name: "interval", Value: 25 * time.Millisecond, Usage: "pause `DUR` between clients, as clients that come and go; 0 = none"}},
	{Flag: &cli.DurationFlag{Name: "setup-delay", Value: 20 * time.Millisecond, Usage: "embedded upstream only: wait `DUR` before its first byte on a new connection; 0 = none"}},
	{Flag: &cli.IntFlag{Name: "warm", Value: defaultWarm, Usage: "`N` warm connections for the pooled mode"},
		min: 1, max: pool.DefaultMax},
	{Flag: &cli.StringFlag{Name: "send", Usage: "bytes each client sends before waiting for the first byte back (Go escapes like \\r\\n work); default: 1 byte to the embedded upstream, nothing to a REMOTE"}},
	{Flag: &cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "give up on one client after `DUR`; more than 0"},
		positive: true},
	{Flag: &cli.BoolFlag{Name: "json", Usage: "print the results as JSON on stdout"}},
}, benchSSHFlags()...) // --via: against your own SSH server (bench_via.go)

func init() {
	for _, s := range benchFlags {
		if f, ok := s.Flag.(*cli.IntFlag); ok {
			f.Usage += fmt.Sprintf(" (%d to %d)", s.min, s.max)
		}
		benchCommand.Flags = append(benchCommand.Flags, s.Flag)
	}
	// forward's TLS flags, the same ones: bench --tls measures what the pool
	// saves a new client of a TLS upstream (tls_upstream.go, bench_tls.go).
	for _, n := range append([]string{"tls"}, tlsFlagNames...) {
		benchCommand.Flags = append(benchCommand.Flags, findFlag(n).Flag)
	}
}

// benchMode is one way of reaching the upstream, with its latencies.
type benchMode struct {
	Name    string  `json:"name"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	HitRate float64 `json:"pool_hit_rate,omitempty"`
	samples []time.Duration
}

type benchResult struct {
	Remote     string      `json:"remote"`
	Via        string      `json:"via,omitempty"` // bench --via: the SSH server, user@host:port
	Embedded   bool        `json:"embedded"`
	TLS        bool        `json:"tls,omitempty"`
	SetupDelay float64     `json:"setup_delay_ms,omitempty"`
	Clients    int         `json:"clients"`
	Modes      []benchMode `json:"modes"`
	SavedP50   float64     `json:"saved_p50_ms"`
}

func benchAction(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) > 1 {
		if strings.HasPrefix(args[1], "-") {
			fix := append(append(append([]string{"warmport", "bench"}, typedFlags(c)...), args[1:]...), args[0])
			for i, a := range fix {
				fix[i] = shellQuote(a)
			}
			return usageErrorf("%s after REMOTE: flags go first: %s", strings.Join(args[1:], " "), strings.Join(fix, " "))
		}
		return usageErrorf("unexpected argument %q: warmport bench [flags] [REMOTE]", args[1])
	}
	if err := checkFlags(c, benchFlags); err != nil {
		return err
	}
	n, warm := c.Int("clients"), c.Int("warm")
	send, err := unescape(c.String("send"))
	if err != nil {
		return usageErrorf("--send: %v", err)
	}
	res := benchResult{Clients: n, TLS: c.Bool("tls")}
	var cert *tls.Certificate
	if len(args) == 1 {
		if res.Remote, err = parseRemote(args[0]); err != nil {
			return usageErrorf("%v", err)
		}
	} else {
		if res.TLS {
			if cert, err = benchCertificate(); err != nil {
				return runtimeErrorf("bench: make the embedded upstream's certificate: %v", err)
			}
		}
		up, err := startSlowUpstream(c.Duration("setup-delay"), cert)
		if err != nil {
			return runtimeErrorf("start the embedded upstream: %v", err)
		}
		defer up.close()
		res.Remote, res.Embedded = up.addr(), true
		res.SetupDelay = session.Millis(c.Duration("setup-delay"))
		if send == nil {
			send = []byte{'x'}
		}
	}
	bt, err := benchTLSFor(c, res.Remote, cert)
	if err != nil {
		return err
	}
	b := &bencher{send: send, timeout: c.Duration("timeout"), interval: c.Duration("interval"), n: n, tls: bt}
	tun, sshCfg, err := benchVia(c, res.Remote, b.timeout)
	if err != nil {
		return err
	}
	if tun != nil && bt != nil {
		tun.Close()
		return usageErrorf("--tls with --via: TLS through an SSH channel is not supported yet; drop one of them")
	}
	ctx := signalsFrom(c.Context).stopCtx
	direct, flag := "direct", ""
	if res.TLS {
		direct, flag = "direct TLS", " --tls"
	}
	modes := []struct {
		name string
		warm int // -1: direct, or a new SSH connection per client with --via
	}{{direct, -1}, {"warmport" + flag + " --warm 0", 0}, {fmt.Sprintf("warmport%s --warm %d", flag, warm), warm}}
	if tun != nil {
		defer tun.Close()
		b.via, res.Via = tun, tun.String()
		modes[1].name, modes[2].name = "warmport --via --warm 0", fmt.Sprintf("warmport --via --warm %d", warm)
	} else if err := b.check(res.Remote); err != nil {
		return err
	}
	for _, m := range modes {
		var mode benchMode
		var err error
		if m.warm < 0 && tun != nil {
			mode, err = b.runFresh(ctx, sshCfg, res.Remote)
		} else {
			mode, err = b.run(ctx, res.Remote, m.name, m.warm)
		}
		if err != nil {
			return err
		}
		res.Modes = append(res.Modes, mode)
	}
	res.SavedP50 = res.Modes[0].P50 - res.Modes[2].P50
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(res)
	}
	renderBench(c.App.Writer, &res)
	return nil
}

type bencher struct {
	via      *sshvia.Tunnel // bench --via; nil without
	send     []byte
	timeout  time.Duration
	interval time.Duration
	n        int
	tls      *benchTLS // --tls, else nil
}

// check makes one direct client, so a dead or silent REMOTE fails with one
// clear line before anything is measured.
func (b *bencher) check(remote string) error {
	if _, err := b.client(remote, true); err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return runtimeErrorf("bench: cannot connect to %s (%v): is it running, and is the address right?", remote, op.Err)
		}
		if b.tls != nil && !errors.Is(err, errBenchRead) {
			return runtimeErrorf("bench: %s: %s", remote, oneLine(tlsDialError{err}.Error()))
		}
		return runtimeErrorf("bench: %s %v", remote, err)
	}
	return nil
}

// run times b.n sequential clients to remote: directly when warm < 0,
// otherwise through an in-process forwarder with that many warm conns.
func (b *bencher) run(ctx context.Context, remote, name string, warm int) (benchMode, error) {
	mode := benchMode{Name: name}
	target := remote
	var fw *forward.Forwarder
	if warm >= 0 {
		var err error
		cfg := forward.Config{Local: "127.0.0.1:0", Remote: remote, DialTimeout: b.timeout,
			Pool: pool.Options{Warm: warm, TTL: time.Minute}}
		if b.via != nil {
			(&sshTunnel{tun: b.via}).upstream(&cfg)
		} else if b.tls != nil {
			b.tls.up.apply(&cfg)
		}
		fw, err = forward.New(cfg)
		if err != nil {
			return mode, runtimeErrorf("bench: start the forwarder: %v", err)
		}
		serveCtx, stop := context.WithCancel(ctx)
		defer stop()
		go fw.Serve(serveCtx)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			fw.Shutdown(sctx)
		}()
		target = fw.Addr().String()
		if err := waitWarm(ctx, fw, warm, b.timeout); err != nil {
			return mode, err
		}
	}
	for i := 0; i < b.n; i++ {
		select { // every client, the first too, comes an interval after the last
		case <-time.After(b.interval):
		case <-ctx.Done():
			return mode, runtimeErrorf("bench: interrupted")
		}
		d, err := b.client(target, warm < 0)
		if err != nil {
			return mode, runtimeErrorf("bench: %s: client %d: %v", name, i+1, err)
		}
		mode.samples = append(mode.samples, d)
	}
	mode.summarize()
	if fw != nil && warm > 0 {
		if p := fw.PoolStats(); p.Hits+p.Misses > 0 {
			mode.HitRate = float64(p.Hits) / float64(p.Hits+p.Misses)
		}
	}
	return mode, nil
}

// summarize sorts the samples and takes their percentiles.
func (m *benchMode) summarize() {
	slices.Sort(m.samples)
	m.P50, m.P90, m.P99 = session.Millis(pct(m.samples, 50)), session.Millis(pct(m.samples, 90)), session.Millis(pct(m.samples, 99))
}

// waitWarm waits until the pool holds warm connections, so the first
// measured client meets the pool as a steady stream of clients would.
func waitWarm(ctx context.Context, fw *forward.Forwarder, warm int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for fw.PoolStats().Idle < warm {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return runtimeErrorf("bench: the pool did not fill %d connections within %s: is REMOTE accepting connections?", warm, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// errBenchRead marks a failure after the connection was made.
var errBenchRead = errors.New("bench: read")

// client connects, sends b.send and waits for the first byte back. A direct
// client of a TLS upstream makes the whole handshake first.
func (b *bencher) client(addr string, direct bool) (time.Duration, error) {
	t0 := time.Now()
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	var c net.Conn
	var err error
	if direct && b.tls != nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: b.timeout}, Config: b.tls.direct}
		c, err = d.Dial(network, addr)
	} else {
		c, err = net.DialTimeout(network, addr, b.timeout)
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(t0.Add(b.timeout))
	if len(b.send) > 0 {
		if _, err := c.Write(b.send); err != nil {
			return 0, err
		}
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && len(b.send) == 0 {
			return 0, fmt.Errorf("%w: sent nothing within %s: it waits for the client to speak first; give --send, e.g. --send 'HEAD / HTTP/1.0\\r\\n\\r\\n'", errBenchRead, b.timeout)
		}
		if err == io.EOF {
			return 0, fmt.Errorf("%w: closed the connection before sending a byte", errBenchRead)
		}
		return 0, fmt.Errorf("%w: %w", errBenchRead, err)
	}
	return time.Since(t0), nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func renderBench(w io.Writer, r *benchResult) {
	what, vs, base := r.Remote, "VS DIRECT", "a direct connection's"
	kind := "upstream"
	if r.TLS {
		kind, what = "TLS upstream", "TLS upstream "+r.Remote
	}
	if r.Via != "" {
		what, vs, base = r.Remote+" via "+r.Via, "VS NEW SSH", "a new SSH connection's"
	}
	if r.Embedded {
		what = fmt.Sprintf("embedded %s %s with a %s setup delay", kind, r.Remote, fmtMS(r.SetupDelay))
	}
	fmt.Fprintf(w, "%s %d new clients per mode (connect, send, first byte back) to %s\n", bold("warmport bench:"), r.Clients, what)
	t := &table{cols: []column{{"MODE", false}, {"P50", true}, {"P90", true}, {"P99", true}, {vs, true}, {"POOL HITS", true}}}
	direct := r.Modes[0].P50
	for i, m := range r.Modes {
		ratio, hits := "1.00x", ""
		if i > 0 && direct > 0 {
			ratio = fmt.Sprintf("%.2fx", m.P50/direct)
		}
		if m.HitRate > 0 {
			hits = ratePercent(m.HitRate)
		}
		paint := []func(...any) string{nil, nil, nil, nil, nil, nil}
		if i == len(r.Modes)-1 {
			paint[0], paint[1], paint[4] = green, green, green
		}
		t.add([]string{m.Name, fmtMS(m.P50), fmtMS(m.P90), fmtMS(m.P99), ratio, hits}, paint)
	}
	t.write(w)
	if r.SavedP50 > 0 {
		fmt.Fprintf(w, "the pool saved each new client %s at the median (%.0f%% of %s wait)\n",
			green(fmtMS(r.SavedP50)), r.SavedP50/direct*100, base)
	} else {
		fmt.Fprintf(w, "the pool saved nothing measurable here: the upstream's handshake is already cheap (loopback?)\n")
	}
}

// unescape reads Go escapes (\r, \n, \x00, \t) in --send.
func unescape(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			out = append(out, s[i])
			continue
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '\\':
			out = append(out, '\\')
		case 'x':
			var v byte
			if i+2 >= len(s) {
				return nil, fmt.Errorf(`\x needs two hex digits`)
			}
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &v); err != nil {
				return nil, fmt.Errorf(`\x%s is not two hex digits`, s[i+1:i+3])
			}
			out = append(out, v)
			i += 2
		default:
			return nil, fmt.Errorf(`unknown escape \%c; use \r \n \t \\ or \xHH`, s[i])
		}
	}
	return out, nil
}

// slowUpstream stands in for a distant server: each new connection waits
// the setup delay before its first byte, then echoes; with a certificate it
// makes a TLS server's handshake after the delay.
type slowUpstream struct {
	ln    net.Listener
	delay time.Duration
	tls   *tls.Config // nil: plain TCP
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startSlowUpstream(delay time.Duration, cert *tls.Certificate) (*slowUpstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &slowUpstream{ln: ln, delay: delay, conns: make(map[net.Conn]bool)}
	if cert != nil {
		u.tls = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	u.wg.Add(1)
	go u.serve()
	return u, nil
}

func (u *slowUpstream) addr() string { return u.ln.Addr().String() }

func (u *slowUpstream) serve() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = true
		u.mu.Unlock()
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer func() {
				u.mu.Lock()
				delete(u.conns, c)
				u.mu.Unlock()
				c.Close()
			}()
			time.Sleep(u.delay) // the handshake this upstream makes every new connection pay
			var rw io.ReadWriter = c
			if u.tls != nil {
				rw = tls.Server(c, u.tls)
			}
			io.Copy(rw, rw)
		}()
	}
}

func (u *slowUpstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}
