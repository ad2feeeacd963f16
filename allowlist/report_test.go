package allowlist

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock whose time moves only when the test says, with the
// timers it was asked for run by advance when they are due.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) afterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{c.t.Add(d), f})
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due []func()
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.at.After(c.t) {
			due = append(due, tm.f)
		} else {
			kept = append(kept, tm)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func newTestReporter(perSecond int) (*Reporter, *fakeClock, *[]string) {
	var lines []string
	var mu sync.Mutex
	r := NewReporter(func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}, perSecond)
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.now, r.afterFunc = c.now, c.afterFunc
	return r, c, &lines
}

func client(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 40000)
}

func TestReporterRateLimit(t *testing.T) {
	tests := []struct {
		name string
		run  func(r *Reporter, c *fakeClock)
		want []string
	}{
		{"a few are all named", func(r *Reporter, c *fakeClock) {
			r.Denied(client(1))
			c.advance(300 * time.Millisecond)
			r.Denied(client(2))
			c.advance(5 * time.Second)
		}, []string{
			"warmport: denied 203.0.113.1:40000 (not in --allow)",
			"warmport: denied 203.0.113.2:40000 (not in --allow)",
		}},
		{"a scan that stops: the summary comes from the timer", func(r *Reporter, c *fakeClock) {
			for i := 1; i <= 100; i++ {
				r.Denied(client(i))
			}
			c.advance(999 * time.Millisecond)
			r.Denied(client(101)) // same window
			c.advance(time.Millisecond)
		}, []string{
			"warmport: denied 203.0.113.1:40000 (not in --allow)",
			"warmport: denied 203.0.113.2:40000 (not in --allow)",
			"warmport: ... and 99 more denied",
		}},
		{"a scan that goes on: one summary per window", func(r *Reporter, c *fakeClock) {
			for s := 0; s < 3; s++ {
				for i := 1; i <= 10; i++ {
					r.Denied(client(s*10 + i))
					c.advance(100 * time.Millisecond)
				}
			}
		}, []string{
			"warmport: denied 203.0.113.1:40000 (not in --allow)",
			"warmport: denied 203.0.113.2:40000 (not in --allow)",
			"warmport: ... and 8 more denied",
			"warmport: denied 203.0.113.11:40000 (not in --allow)",
			"warmport: denied 203.0.113.12:40000 (not in --allow)",
			"warmport: ... and 8 more denied",
			"warmport: denied 203.0.113.21:40000 (not in --allow)",
			"warmport: denied 203.0.113.22:40000 (not in --allow)",
			"warmport: ... and 8 more denied",
		}},
		{"quiet after a burst: the next client is named at once", func(r *Reporter, c *fakeClock) {
			for i := 1; i <= 3; i++ {
				r.Denied(client(i))
			}
			c.advance(10 * time.Second)
			r.Denied(client(9))
		}, []string{
			"warmport: denied 203.0.113.1:40000 (not in --allow)",
			"warmport: denied 203.0.113.2:40000 (not in --allow)",
			"warmport: ... and 1 more denied",
			"warmport: denied 203.0.113.9:40000 (not in --allow)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c, lines := newTestReporter(2)
			tt.run(r, c)
			if !reflect.DeepEqual(*lines, tt.want) {
				t.Errorf("lines:\n%q\nwant:\n%q", *lines, tt.want)
			}
		})
	}
}

// Denied from many goroutines at once (several accept loops): every client
// is either named or counted, exactly once.
func TestReporterConcurrent(t *testing.T) {
	r, c, lines := newTestReporter(DefaultLinesPerSecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 125; i++ {
				r.Denied(client(i))
			}
		}()
	}
	wg.Wait()
	c.advance(time.Second)
	named, more := 0, 0
	for _, l := range *lines {
		var k int
		if _, err := fmt.Sscanf(l, "warmport: ... and %d more denied", &k); err == nil {
			more += k
		} else {
			named++
		}
	}
	if named != DefaultLinesPerSecond || named+more != 1000 {
		t.Errorf("named %d, counted %d more; want %d named and 1000 in all", named, more, DefaultLinesPerSecond)
	}
}

// The real clock's timer brings the summary too.
func TestReporterRealTimer(t *testing.T) {
	done := make(chan string, 4)
	r := NewReporter(func(format string, args ...any) { done <- fmt.Sprintf(format, args...) }, 1)
	r.Denied(client(1))
	r.Denied(client(2))
	for _, want := range []string{"warmport: denied 203.0.113.1:40000 (not in --allow)", "warmport: ... and 1 more denied"} {
		select {
		case got := <-done:
			if got != want {
				t.Errorf("got %q; want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no line %q within 5 s", want)
		}
	}
}
