package recycle

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// step is what one side sends next, and whether the tracker must be Clean after it.
type step struct {
	req   bool   // the client sends data; else the server does
	data  string // bytes sent
	clean bool   // Clean() after the whole step
	midOK bool   // Clean() may be true before the step's last byte (else it must be false)
}

func rq(data string, clean bool) step { return step{req: true, data: data, clean: clean} }
func rs(data string, clean bool) step { return step{data: data, clean: clean} }
func rqMid(data string, clean bool) step {
	return step{req: true, data: data, clean: clean, midOK: true}
}

type streamCase struct {
	name  string
	steps []step
}

// chunking splits one step's data into the chunks fed to the tracker.
type chunking struct {
	name  string
	split func(step int, data string) []string
}

func whole(_ int, d string) []string { return []string{d} }

func bytewise(_ int, d string) []string {
	out := make([]string, len(d))
	for i := range len(d) { // bytes, not runes
		out[i] = d[i : i+1]
	}
	return out
}

// randomSplits cuts each step at random points, seeded so a failure reproduces.
func randomSplits(seed uint64) func(int, string) []string {
	r := rand.New(rand.NewPCG(seed, 7))
	return func(_ int, d string) []string {
		var out []string
		for len(d) > 0 {
			n := 1 + r.IntN(len(d))
			out = append(out, d[:n])
			d = d[n:]
		}
		return out
	}
}

// cutAt splits step s at offset k and leaves the other steps whole.
func cutAt(s, k int) func(int, string) []string {
	return func(i int, d string) []string {
		if i != s || k <= 0 || k >= len(d) {
			return []string{d}
		}
		return []string{d[:k], d[k:]}
	}
}

// chunkings lists every way a case is fed: whole, byte by byte, at every single cut
// point of every step, and a few random splittings.
func chunkings(c streamCase) []chunking {
	cs := []chunking{{"whole", whole}, {"bytewise", bytewise}}
	for i, s := range c.steps {
		stride := 1
		if len(s.data) > 512 { // long steps: a sample of cut points, or the test is quadratic
			stride = len(s.data)/64 + 1
		}
		for k := 1; k < len(s.data); k += stride {
			cs = append(cs, chunking{name: "cut", split: cutAt(i, k)})
		}
		if len(s.data) > 1 {
			cs = append(cs, chunking{name: "cut", split: cutAt(i, len(s.data)-1)})
		}
	}
	for seed := range uint64(8) {
		cs = append(cs, chunking{name: "random", split: randomSplits(seed)})
	}
	return cs
}

// runStream feeds c to a fresh tracker of p in every chunking and checks Clean after
// each step, and before each step's last byte unless the step allows it.
func runStream(t *testing.T, p Protocol, c streamCase) {
	t.Helper()
	for _, ch := range chunkings(c) {
		tr := p.NewTracker()
		for i, s := range c.steps {
			chunks := ch.split(i, s.data)
			for j, chunk := range chunks {
				if s.req {
					tr.Request([]byte(chunk))
				} else {
					tr.Response([]byte(chunk))
				}
				if j < len(chunks)-1 && !s.midOK && tr.Clean() {
					t.Fatalf("%s: step %d (%q): Clean() true mid-step after chunk %d of %d; want false", ch.name, i, abbrev(s.data), j, len(chunks))
				}
			}
			if got := tr.Clean(); got != s.clean {
				t.Fatalf("%s: after step %d (%q): Clean() = %v; want %v", ch.name, i, abbrev(s.data), got, s.clean)
			}
		}
	}
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// crlf turns "|" into "\r\n" so cases read like the wire.
func crlf(s string) string { return strings.ReplaceAll(s, "|", "\r\n") }
