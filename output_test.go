package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter blocks every Write until open is closed, as a terminal that
// stopped reading does, and keeps what it was given.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	buf  strings.Builder
}

func (w *gateWriter) Write(p []byte) (int, error) {
	<-w.open
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.WriteString(string(p))
}

// TestLineQueueStalled: with the writer stalled, queueing never blocks;
// what does not fit is dropped and counted, warmport's own lines are kept,
// and once the writer moves again every line is written or counted.
func TestLineQueueStalled(t *testing.T) {
	const n = 3 * lineQueueMax
	w := &gateWriter{open: make(chan struct{})}
	q := newLineQueue(w)
	queued := make(chan struct{})
	go func() {
		defer close(queued)
		for range n {
			q.record("#\n")
		}
		q.printf("warmport: own line\n")
	}()
	select {
	case <-queued:
	case <-time.After(exitTimeout):
		t.Fatalf("queueing %d lines to a stalled writer did not return within %v", n, exitTimeout)
	}
	close(w.open)
	dropped := q.close()
	out := w.buf.String()
	shown := strings.Count(out, "#\n")
	if shown+int(dropped) != n || dropped == 0 || !strings.HasSuffix(out, "warmport: own line\n") {
		t.Errorf("got %d lines written + %d dropped, own line kept %v; want %d in all, some dropped, own line last",
			shown, dropped, strings.HasSuffix(out, "warmport: own line\n"), n)
	}
	q.record("late\n")
	if got := q.close(); got != dropped+1 {
		t.Errorf("a line after close: dropped %d; want %d", got, dropped+1)
	}
}

func TestEscapeControls(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"héllo wörld", "héllo wörld"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"a\nb\tc\x7f", `a\x0ab\x09c\x7f`},
		{"\u009b2J", `\u009b2J`},
		{"db\u202e:5432", `db\u202e:5432`},
		{"bad\xffutf8", `bad\xffutf8`},
	} {
		if got := escapeControls(c.in); got != c.want {
			t.Errorf("escapeControls(%q): got %q; want %q", c.in, got, c.want)
		}
	}
}
