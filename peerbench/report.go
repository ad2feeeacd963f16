package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Tests and the metrics each one records per measurement.
const (
	testBulk  = "bulk"
	testConns = "conns"
	testTTFB  = "ttfb"
	testIdle  = "idle"

	mMiBps       = "MiB/s"
	mCPUPct      = "CPU %"
	mCPUPerGiB   = "CPU s/GiB"
	mHostCPU     = "host busy %"
	mConnsPerSec = "conns/s"
	mCPUPerConn  = "CPU µs/conn"
	mFailed      = "failed"
	mP50         = "p50"
	mP90         = "p90"
	mP99         = "p99"
	mHits        = "hits"
	mMisses      = "misses"
	mFDs         = "fds/conn"
	mRSS         = "RSS KiB/conn"
	mPSS         = "PSS KiB/conn"

	directName = "direct"
)

// results collects every round's numbers: test -> peer -> metric -> values.
type results struct {
	mu   sync.Mutex
	vals map[string][]float64 // key(test, peer, metric)
	errs map[string][]string  // key(test, peer)
}

func newResults() *results {
	return &results{vals: map[string][]float64{}, errs: map[string][]string{}}
}

func key(parts ...string) string { return strings.Join(parts, "\x00") }

// add records one successful measurement.
func (r *results) add(test, peer string, m map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range m {
		r.vals[key(test, peer, k)] = append(r.vals[key(test, peer, k)], v)
	}
}

// fail records one failed measurement.
func (r *results) fail(test, peer string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[key(test, peer)] = append(r.errs[key(test, peer)], err.Error())
}

// med is the median over the rounds of one metric (NaN if never measured).
func (r *results) med(test, peer, metric string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return median(r.vals[key(test, peer, metric)])
}

// sum adds one metric over the rounds (NaN if never measured).
func (r *results) sum(test, peer, metric string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.vals[key(test, peer, metric)]
	if len(vs) == 0 {
		return math.NaN()
	}
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t
}

// notes lists failed rounds of a test, one line per peer.
func (r *results) notes(test string, peers []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range peers {
		if errs := r.errs[key(test, p)]; len(errs) > 0 {
			out = append(out, fmt.Sprintf("%s: %d measurement(s) failed, first: %s", p, len(errs), errs[0]))
		}
	}
	sort.Strings(out)
	return out
}

// runInfo describes the run for the table titles.
type runInfo struct {
	rounds      int
	bulkTime    time.Duration
	connTime    time.Duration
	clients     int
	ttfbClients int
	idleConns   int
}

func (ri runInfo) roundsText() string {
	if ri.rounds == 1 {
		return "1 round"
	}
	return fmt.Sprintf("median of %d rounds", ri.rounds)
}

// tables turns the collected results into the four report tables. peers maps
// each test to its rows in display order.
func (r *results) tables(ri runInfo, peers map[string][]string) []*table {
	var out []*table

	if ps := peers[testBulk]; len(ps) > 0 {
		t := &table{
			title:   fmt.Sprintf("Bulk: one TCP stream client -> forwarder -> sink, %s measured, %s", ri.bulkTime, ri.roundsText()),
			headers: []string{"peer", mMiBps, "vs direct", mCPUPct, mCPUPerGiB, mHostCPU},
		}
		base := r.med(testBulk, directName, mMiBps)
		for _, p := range ps {
			v := r.med(testBulk, p, mMiBps)
			t.addRow(p, num(v, 0), ratio(v, base), num(r.med(testBulk, p, mCPUPct), 0), num(r.med(testBulk, p, mCPUPerGiB), 3),
				num(r.med(testBulk, p, mHostCPU), 0))
		}
		t.notes = r.notes(testBulk, ps)
		out = append(out, t)
	}

	if ps := peers[testConns]; len(ps) > 0 {
		t := &table{
			title: fmt.Sprintf("Short connections: %d clients, one HTTP/1.1 GET each (%d B request, %d B reply), %s measured, %s",
				ri.clients, len(httpRequest), len(httpReply), ri.connTime, ri.roundsText()),
			headers: []string{"peer", mConnsPerSec, "vs direct", mCPUPerConn, "failed conns", mHostCPU, "pool hits"},
		}
		base := r.med(testConns, directName, mConnsPerSec)
		for _, p := range ps {
			v := r.med(testConns, p, mConnsPerSec)
			t.addRow(p, num(v, 0), ratio(v, base), num(r.med(testConns, p, mCPUPerConn), 1), num(r.sum(testConns, p, mFailed), 0),
				num(r.med(testConns, p, mHostCPU), 0), hitPct(r.sum(testConns, p, mHits), r.sum(testConns, p, mMisses)))
		}
		t.notes = r.notes(testConns, ps)
		out = append(out, t)
	}

	if ps := peers[testTTFB]; len(ps) > 0 {
		t := &table{
			title: fmt.Sprintf("Time to first byte: %d sequential new clients, upstream over a 10 ms RTT link, %s",
				ri.ttfbClients, ri.roundsText()),
			headers: []string{"peer", "p50 ms", "p90 ms", "p99 ms", "p50 vs direct", "p99 vs direct", "pool hits"},
		}
		b50, b99 := r.med(testTTFB, directName, mP50), r.med(testTTFB, directName, mP99)
		for _, p := range ps {
			p50, p99 := r.med(testTTFB, p, mP50), r.med(testTTFB, p, mP99)
			t.addRow(p, num(p50, 2), num(r.med(testTTFB, p, mP90), 2), num(p99, 2), ratio(p50, b50), ratio(p99, b99),
				hitRate(r.sum(testTTFB, p, mHits), r.sum(testTTFB, p, mMisses)))
		}
		t.notes = r.notes(testTTFB, ps)
		out = append(out, t)
	}

	if ps := peers[testIdle]; len(ps) > 0 {
		t := &table{
			title: fmt.Sprintf("Idle connections: cost per connection with %d open, %s (direct = no forwarder = 0)",
				ri.idleConns, ri.roundsText()),
			headers: []string{"peer", mFDs, mRSS, mPSS},
		}
		for _, p := range ps {
			t.addRow(p, num(r.med(testIdle, p, mFDs), 2), num(r.med(testIdle, p, mRSS), 1), num(r.med(testIdle, p, mPSS), 1))
		}
		t.notes = r.notes(testIdle, ps)
		out = append(out, t)
	}
	return append(out, r.tlsTables(ri, peers)...)
}

// hitPct formats pool hits over all rounds as a share: "99%".
func hitPct(hits, misses float64) string {
	if math.IsNaN(hits) || math.IsNaN(misses) || hits+misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*hits/(hits+misses))
}

// hitRate formats pool hits over all rounds as "396/400 (99%)".
func hitRate(hits, misses float64) string {
	if math.IsNaN(hits) || math.IsNaN(misses) || hits+misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f (%.0f%%)", hits, hits+misses, 100*hits/(hits+misses))
}
