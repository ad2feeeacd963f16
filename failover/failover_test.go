package failover

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"db:5432", []string{"db:5432"}, false},
		{"db1:5432,db2:5432", []string{"db1:5432", "db2:5432"}, false},
		{"[2001:db8::1]:5432, 10.0.0.2:5432 ,unix:/run/pg.sock", []string{"[2001:db8::1]:5432", "10.0.0.2:5432", "unix:/run/pg.sock"}, false},
		{"db1:5432,,db2:5432", nil, true},
		{"db1:5432,", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Split(tt.in)
			if !reflect.DeepEqual(got, tt.want) || (err != nil) != tt.wantErr {
				t.Fatalf("Split(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) || !strings.Contains(err.Error(), "e.g.")) {
				t.Errorf("error %q; want it to name %q and give an example", err, tt.in)
			}
		})
	}
}

// fake is a set of candidates whose dials fail while the test says so, on
// a clock that moves only when the test says so.
type fake struct {
	mu    sync.Mutex
	t     time.Time
	down  map[string]bool
	tried []string
	lines []string
}

func newFake(t *testing.T, addrs ...string) (*Set[string], *fake) {
	t.Helper()
	f := &fake{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), down: map[string]bool{}}
	s := New[string](addrs, func(format string, args ...any) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lines = append(f.lines, fmt.Sprintf(format, args...))
	})
	s.now = func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
	s.jitter = func() float64 { return 0.5 } // factor 1: exact back-offs
	return s, f
}

func (f *fake) dialOne(_ context.Context, addr string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tried = append(f.tried, addr)
	if f.down[addr] {
		return "", fmt.Errorf("dial tcp %s: connect: connection refused", addr)
	}
	return "conn to " + addr, nil
}

func (f *fake) set(addr string, down bool) { f.mu.Lock(); f.down[addr] = down; f.mu.Unlock() }
func (f *fake) advance(d time.Duration)    { f.mu.Lock(); f.t = f.t.Add(d); f.mu.Unlock() }

// takeTried returns the candidates dialed since the last call.
func (f *fake) takeTried() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tried
	f.tried = nil
	return t
}

// dial dials once and checks who served and whom it tried.
func dial(t *testing.T, s *Set[string], f *fake, wantServed string, wantTried ...string) {
	t.Helper()
	c, addr, err := s.Dial(context.Background(), f.dialOne)
	if wantServed == "" {
		if err == nil {
			t.Fatalf("Dial served by %s; want an error", addr)
		}
	} else if err != nil || addr != wantServed || c != "conn to "+wantServed {
		t.Fatalf("Dial = %q, %q, %v; want a conn from %s", c, addr, err, wantServed)
	}
	if got := f.takeTried(); !reflect.DeepEqual(got, wantTried) {
		t.Fatalf("tried %q; want %q", got, wantTried)
	}
}

func TestBackoffTiming(t *testing.T) {
	s, f := newFake(t, "a:1", "b:2")
	dial(t, s, f, "a:1", "a:1")

	f.set("a:1", true)
	dial(t, s, f, "b:2", "a:1", "b:2") // a fails: 1 s back-off
	// Each step: skipped until just before the back-off ends, retried at
	// its end, fails again, the back-off doubles up to 30 s.
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		f.advance(d - time.Millisecond)
		dial(t, s, f, "b:2", "b:2")
		f.advance(time.Millisecond)
		dial(t, s, f, "b:2", "a:1", "b:2")
	}
	f.set("a:1", false)
	f.advance(30*time.Second - time.Millisecond)
	dial(t, s, f, "b:2", "b:2") // still backing off: not tried even though it is up
	f.advance(time.Millisecond)
	dial(t, s, f, "a:1", "a:1") // retried: back, and first again
	dial(t, s, f, "a:1", "a:1")

	// After coming back the back-off starts from 1 s again.
	f.set("a:1", true)
	dial(t, s, f, "b:2", "a:1", "b:2")
	f.advance(time.Second)
	dial(t, s, f, "b:2", "a:1", "b:2")

	want := []string{
		"warmport: upstream a:1 is down (dial tcp a:1: connect: connection refused); trying the next candidate, retrying it in 1s",
		"warmport: upstream a:1 is back",
		"warmport: upstream a:1 is down (dial tcp a:1: connect: connection refused); trying the next candidate, retrying it in 1s",
	}
	if !reflect.DeepEqual(f.lines, want) {
		t.Errorf("lines:\n%q\nwant:\n%q", f.lines, want)
	}
}

func TestJitter(t *testing.T) {
	for _, tt := range []struct {
		r    float64
		want time.Duration
	}{{0, 900 * time.Millisecond}, {0.5, time.Second}, {0.999, 1099800 * time.Microsecond}} {
		t.Run(fmt.Sprint(tt.r), func(t *testing.T) {
			s, f := newFake(t, "a:1", "b:2")
			s.jitter = func() float64 { return tt.r }
			f.set("a:1", true)
			dial(t, s, f, "b:2", "a:1", "b:2")
			f.advance(tt.want - time.Microsecond)
			dial(t, s, f, "b:2", "b:2")
			f.advance(time.Microsecond)
			dial(t, s, f, "b:2", "a:1", "b:2")
		})
	}
}

// When every candidate is down, none is refused for backing off: all are
// tried, in order, and the first one's error comes back.
func TestAllDown(t *testing.T) {
	s, f := newFake(t, "a:1", "b:2", "c:3")
	for _, a := range []string{"a:1", "b:2", "c:3"} {
		f.set(a, true)
	}
	_, addr, err := s.Dial(context.Background(), f.dialOne)
	if err == nil || !strings.Contains(err.Error(), "a:1") || addr != "" {
		t.Fatalf("Dial = %q, %v; want a:1's error", addr, err)
	}
	if got, want := f.takeTried(), []string{"a:1", "b:2", "c:3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tried %q; want %q", got, want)
	}
	// All backing off now; c comes up first: it serves at once.
	f.set("c:3", false)
	dial(t, s, f, "c:3", "a:1", "b:2", "c:3")
	// b comes up while c works: b is still backing off, c serves alone.
	f.set("b:2", false)
	dial(t, s, f, "c:3", "c:3")
	f.advance(2 * time.Second)
	dial(t, s, f, "b:2", "a:1", "b:2")
}

// Many dials failing at once for one outage count as one failure: one
// line and a 1 s back-off, not 2^n.
func TestConcurrentFailuresCountOnce(t *testing.T) {
	s, f := newFake(t, "a:1", "b:2")
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	slowFail := func(ctx context.Context, addr string) (string, error) {
		if addr == "a:1" {
			started <- struct{}{}
			<-release
			return "", errors.New("dial tcp a:1: connection refused")
		}
		return f.dialOne(ctx, addr)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, addr, err := s.Dial(context.Background(), slowFail); err != nil || addr != "b:2" {
				t.Errorf("Dial = %q, %v; want b:2", addr, err)
			}
		}()
	}
	for i := 0; i < 10; i++ {
		<-started // all ten saw a:1 up
	}
	close(release)
	wg.Wait()
	f.takeTried()
	if len(f.lines) != 1 {
		t.Errorf("lines %q; want one", f.lines)
	}
	f.set("a:1", true)
	f.advance(time.Second)
	dial(t, s, f, "b:2", "a:1", "b:2")
}

// While one dial retries a candidate at the end of its back-off, the
// others skip it: a dead host costs one client the retry, not all of them.
func TestOneRetryAtATime(t *testing.T) {
	s, f := newFake(t, "a:1", "b:2")
	f.set("a:1", true)
	dial(t, s, f, "b:2", "a:1", "b:2")
	f.advance(time.Second)

	inRetry := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Dial(context.Background(), func(ctx context.Context, addr string) (string, error) {
			if addr == "a:1" {
				close(inRetry)
				<-release
			}
			return f.dialOne(ctx, addr)
		})
		done <- err
	}()
	<-inRetry
	dial(t, s, f, "b:2", "b:2") // a is being retried: skipped
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the retrying Dial: %v", err)
	}
	f.takeTried()
	f.advance(2 * time.Second) // the retry failed: next one 2 s on
	dial(t, s, f, "b:2", "a:1", "b:2")
}

// A dial the caller gave up on says nothing about the candidate.
func TestCanceledDialIsNoFailure(t *testing.T) {
	s, f := newFake(t, "a:1", "b:2")
	ctx, cancel := context.WithCancel(context.Background())
	_, _, err := s.Dial(ctx, func(ctx context.Context, addr string) (string, error) {
		cancel()
		return "", ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v; want context.Canceled", err)
	}
	dial(t, s, f, "a:1", "a:1")
	if len(f.lines) != 0 {
		t.Errorf("lines %q; want none", f.lines)
	}
}

func TestSingleCandidate(t *testing.T) {
	s, f := newFake(t, "a:1")
	f.set("a:1", true)
	for i := 0; i < 3; i++ {
		dial(t, s, f, "", "a:1") // every dial tries it: nothing else could serve
	}
	if len(f.lines) != 0 {
		t.Errorf("lines %q; want none for a single REMOTE", f.lines)
	}
}

// A retry claimed by a Dial that an earlier candidate served is given
// back: the next Dial that needs that candidate retries it.
func TestUntriedRetryIsGivenBack(t *testing.T) {
	s, f := newFake(t, "a:1", "b:2", "c:3")
	f.set("a:1", true)
	f.set("b:2", true)
	dial(t, s, f, "c:3", "a:1", "b:2", "c:3")
	f.set("a:1", false)
	f.advance(time.Second)
	dial(t, s, f, "a:1", "a:1") // a back; b's retry was claimed, not made
	f.set("a:1", true)
	f.set("b:2", false)
	dial(t, s, f, "b:2", "a:1", "b:2") // b retried, not left backing off behind c
}
