package main

import "fmt"

// The TLS and Unix tests' names, rows and tables (tls_linux.go runs them).
const (
	testTLSTTFB   = "tlsttfb"   // time to first byte to a TLS 1.3 upstream over the 10 ms link
	testTLSTTFB12 = "tlsttfb12" // the same to a TLS 1.2-only upstream
	testTLSBulk   = "tlsbulk"   // one stream through TLS to a TLS sink on loopback
	testTLSConns  = "tlsconns"  // short HTTP/1.1 connections to a TLS server on loopback
	testTLSIdle   = "tlsidle"   // idle pairs to a TLS echo
	testUnixBulk  = "unixbulk"  // one stream unix->tcp and tcp->unix
	testUnixIdle  = "unixidle"  // idle pairs unix->tcp

	kindStunnel = "stunnel"

	directTLSName = "direct TLS"
	stunnelName   = "stunnel (client mode)"
	socatTLSName  = "socat OPENSSL"

	// tlsIdleConns bounds the idle TLS test: socat forks a process per
	// connection and each makes its own OpenSSL context.
	tlsIdleConns = 500
)

// tlsTestNames are the TLS and Unix tests, for -tests.
var tlsTestNames = []string{testTLSTTFB, testTLSTTFB12, testTLSBulk, testTLSConns, testTLSIdle, testUnixBulk, testUnixIdle}

// tlsTables are the TLS and Unix tests' tables: time to first byte against
// the direct TLS client, throughput and connection rates against stunnel,
// Unix bulk against socat.
func (r *results) tlsTables(ri runInfo, peers map[string][]string) []*table {
	var out []*table
	for _, tt := range []struct{ test, version string }{{testTLSTTFB, "1.3"}, {testTLSTTFB12, "1.2-only"}} {
		ps := peers[tt.test]
		if len(ps) == 0 {
			continue
		}
		t := &table{
			title: fmt.Sprintf("TLS time to first byte: %d sequential new clients, TLS %s upstream over a 10 ms RTT link, %s",
				ri.ttfbClients, tt.version, ri.roundsText()),
			headers: []string{"peer", "p50 ms", "p90 ms", "p99 ms", "p50 vs direct TLS", "p99 vs direct TLS", "pool hits"},
		}
		b50, b99 := r.med(tt.test, directTLSName, mP50), r.med(tt.test, directTLSName, mP99)
		for _, p := range ps {
			p50, p99 := r.med(tt.test, p, mP50), r.med(tt.test, p, mP99)
			t.addRow(p, num(p50, 2), num(r.med(tt.test, p, mP90), 2), num(p99, 2), ratio(p50, b50), ratio(p99, b99),
				hitRate(r.sum(tt.test, p, mHits), r.sum(tt.test, p, mMisses)))
		}
		t.notes = r.notes(tt.test, ps)
		out = append(out, t)
	}
	bulk := func(test, title, base string) {
		ps := peers[test]
		if len(ps) == 0 {
			return
		}
		t := &table{title: title, headers: []string{"peer", mMiBps, "vs " + base, mCPUPct, mCPUPerGiB, mHostCPU}}
		for _, p := range ps {
			v, b := r.med(test, p, mMiBps), r.med(test, base, mMiBps)
			if test == testUnixBulk { // each direction against socat's row of the same direction
				b = r.med(test, p[:len("unix->tcp ")]+"socat", mMiBps)
			}
			t.addRow(p, num(v, 0), ratio(v, b), num(r.med(test, p, mCPUPct), 0), num(r.med(test, p, mCPUPerGiB), 3),
				num(r.med(test, p, mHostCPU), 0))
		}
		t.notes = r.notes(test, ps)
		out = append(out, t)
	}
	bulk(testTLSBulk, fmt.Sprintf("TLS bulk: one stream client -> forwarder -> TLS sink, %s measured, %s", ri.bulkTime, ri.roundsText()), stunnelName)
	if ps := peers[testTLSConns]; len(ps) > 0 {
		t := &table{
			title: fmt.Sprintf("Short TLS connections: %d clients, one HTTP/1.1 GET each to a TLS server, %s measured, %s",
				ri.clients, ri.connTime, ri.roundsText()),
			headers: []string{"peer", mConnsPerSec, "vs " + stunnelName, mCPUPerConn, "failed conns", mHostCPU, "pool hits"},
		}
		base := r.med(testTLSConns, stunnelName, mConnsPerSec)
		for _, p := range ps {
			v := r.med(testTLSConns, p, mConnsPerSec)
			t.addRow(p, num(v, 0), ratio(v, base), num(r.med(testTLSConns, p, mCPUPerConn), 1), num(r.sum(testTLSConns, p, mFailed), 0),
				num(r.med(testTLSConns, p, mHostCPU), 0), hitPct(r.sum(testTLSConns, p, mHits), r.sum(testTLSConns, p, mMisses)))
		}
		t.notes = r.notes(testTLSConns, ps)
		out = append(out, t)
	}
	if ps := peers[testTLSIdle]; len(ps) > 0 {
		t := &table{
			title:   fmt.Sprintf("Idle TLS pairs: cost per connection with %d open, %s", min(ri.idleConns, tlsIdleConns), ri.roundsText()),
			headers: []string{"peer", mFDs, mRSS, mPSS, "RSS vs " + stunnelName},
		}
		base := r.med(testTLSIdle, stunnelName, mRSS)
		for _, p := range ps {
			v := r.med(testTLSIdle, p, mRSS)
			t.addRow(p, num(r.med(testTLSIdle, p, mFDs), 2), num(v, 1), num(r.med(testTLSIdle, p, mPSS), 1), ratio(v, base))
		}
		t.notes = r.notes(testTLSIdle, ps)
		out = append(out, t)
	}
	bulk(testUnixBulk, fmt.Sprintf("Unix bulk: one stream through a Unix socket at one end, %s measured, %s", ri.bulkTime, ri.roundsText()), "socat")
	if ps := peers[testUnixIdle]; len(ps) > 0 {
		t := &table{
			title:   fmt.Sprintf("Idle unix->tcp pairs: cost per connection with %d open, %s", ri.idleConns, ri.roundsText()),
			headers: []string{"peer", mFDs, mRSS, mPSS},
		}
		for _, p := range ps {
			t.addRow(p, num(r.med(testUnixIdle, p, mFDs), 2), num(r.med(testUnixIdle, p, mRSS), 1), num(r.med(testUnixIdle, p, mPSS), 1))
		}
		t.notes = r.notes(testUnixIdle, ps)
		out = append(out, t)
	}
	return out
}
