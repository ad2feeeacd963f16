package recycle

import (
	"strings"
	"testing"
)

// segments decodes fuzz input into a conversation: each segment is a header byte (low
// bit: the client's; the rest: length-1, up to 128) followed by that many bytes.
func segments(data []byte) []step {
	var out []step
	for len(data) > 0 {
		h := data[0]
		n := min(int(h>>1)+1, len(data)-1)
		out = append(out, step{req: h&1 == 1, data: string(data[1 : 1+n])})
		data = data[1+n:]
	}
	return out
}

// encode is segments' inverse, for seeding the corpus with the table cases.
func encode(steps []step) []byte {
	var b []byte
	for _, s := range steps {
		for d := s.data; len(d) > 0; {
			n := min(len(d), 128)
			h := byte(n-1) << 1
			if s.req {
				h |= 1
			}
			b = append(append(b, h), d[:n]...)
			d = d[n:]
		}
	}
	return b
}

// fuzzTracker feeds one conversation whole, byte by byte and in random chunks: Clean
// must agree after every segment, doubt must stick, and the buffers stay bounded.
func fuzzTracker(t *testing.T, p Protocol, data []byte, bad func(Tracker) bool, bufs func(Tracker) []int) {
	steps := segments(data)
	feeds := []func(int, string) []string{whole, bytewise, randomSplits(uint64(len(data)))}
	trackers := make([]Tracker, len(feeds))
	for i := range trackers {
		trackers[i] = p.NewTracker()
	}
	wasBad := false
	for i, s := range steps {
		var want bool
		for j, tr := range trackers {
			for _, c := range feeds[j](i, s.data) {
				if s.req {
					tr.Request([]byte(c))
				} else {
					tr.Response([]byte(c))
				}
			}
			got := tr.Clean()
			if j == 0 {
				want = got
			} else if got != want {
				t.Fatalf("segment %d: Clean() = %v fed in chunks (feed %d); want %v as fed whole", i, got, j, want)
			}
			for _, c := range bufs(tr) {
				if c > 2*maxLine {
					t.Fatalf("segment %d: a line buffer holds %d bytes; want at most %d", i, c, 2*maxLine)
				}
			}
		}
		if wasBad && want {
			t.Fatalf("segment %d: Clean() = true after doubt; want false for good", i)
		}
		wasBad = wasBad || bad(trackers[0])
	}
}

func FuzzHTTP(f *testing.F) {
	for _, c := range httpCases() {
		f.Add(encode(crlfSteps(c.steps)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzTracker(t, HTTP, data, func(tr Tracker) bool { return tr.(*httpTracker).bad },
			func(tr Tracker) []int {
				h := tr.(*httpTracker)
				return []int{cap(h.req.line.buf), cap(h.resp.line.buf)}
			})
	})
}

func FuzzRedis(f *testing.F) {
	for _, c := range redisCases() {
		f.Add(encode(c.steps))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzTracker(t, Redis, data, func(tr Tracker) bool { return tr.(*redisTracker).bad },
			func(tr Tracker) []int {
				r := tr.(*redisTracker)
				return []int{cap(r.req.line.buf), cap(r.rep.line.buf)}
			})
	})
}

func FuzzCheckReset(f *testing.F) {
	for _, s := range []string{"+RESET\r\n", "-ERR unknown command 'RESET'\r\n", "+OK\r\n", "+RES", strings.Repeat("x", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		done, err := Redis.CheckReset(reply)
		if done && err == nil && string(reply) != "+RESET\r\n" {
			t.Fatalf("CheckReset(%q) = done, nil; want that only for +RESET", reply)
		}
	})
}
