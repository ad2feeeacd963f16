package main

import (
	"testing"
	"time"
)

// TestDelayQueueOrderAndDelay: packets come out in order, none before its
// delay, and the deliverer sleeps only until each head is due rather than a
// full delay per packet. The last is checked without a clock bound: the
// sleeps run one after another between the first push and the last due
// time, so what they asked for adds up to less than that span however
// loaded the machine is (a queue that slept the delay per packet would ask
// for n times it).
func TestDelayQueueOrderAndDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	const n = 50
	var slept time.Duration // only the deliverer touches it until done is closed
	q := newDelayQueue(delay, n, func(d time.Duration) { slept += d; time.Sleep(d) })
	type arrival struct {
		id int
		at time.Time
	}
	got := make(chan arrival, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.run(func(p []byte) { got <- arrival{int(p[0]), time.Now()} })
	}()

	// Two bursts, the second half a delay after the first.
	pushed := make([]time.Time, n)
	for i := 0; i < n; i++ {
		if i == n/2 {
			time.Sleep(delay / 2)
		}
		pushed[i] = time.Now()
		if !q.push([]byte{byte(i)}) {
			t.Fatalf("push %d dropped with room in the queue", i)
		}
	}
	lastPushed := time.Now()
	q.close()
	<-done
	close(got)

	i := 0
	for a := range got {
		if a.id != i {
			t.Fatalf("packet %d delivered in position %d; want in order", a.id, i)
		}
		if held := a.at.Sub(pushed[i]); held < delay {
			t.Errorf("packet %d held %v; want at least %v", i, held, delay)
		}
		i++
	}
	if i != n {
		t.Fatalf("delivered %d packets; want %d", i, n)
	}
	if span := lastPushed.Add(delay).Sub(pushed[0]); slept > span {
		t.Errorf("the deliverer asked to sleep %v in all; want at most %v, from the first push to the last due time", slept, span)
	}
}

func TestDelayQueueDropsWhenFull(t *testing.T) {
	q := newDelayQueue(time.Hour, 2, nil)
	for i := 0; i < 2; i++ {
		if !q.push([]byte{1}) {
			t.Fatalf("push %d dropped; want queued", i)
		}
	}
	if q.push([]byte{1}) {
		t.Fatal("push into a full queue succeeded; want dropped")
	}
	if got := q.dropped.Load(); got != 1 {
		t.Errorf("dropped = %d; want 1", got)
	}
}

func TestInBenchNet(t *testing.T) {
	pkt := func(ver byte, src, dst [4]byte) []byte {
		p := make([]byte, 20)
		p[0] = ver<<4 | 5
		copy(p[12:16], src[:])
		copy(p[16:20], dst[:])
		return p
	}
	in1, in2, out := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, [4]byte{198, 18, 1, 2}
	tests := []struct {
		name string
		p    []byte
		want bool
	}{
		{"both inside", pkt(4, in1, in2), true},
		{"destination outside", pkt(4, in1, out), false},
		{"source outside", pkt(4, [4]byte{10, 0, 0, 1}, in2), false},
		{"IPv6", pkt(6, in1, in2), false},
		{"truncated", pkt(4, in1, in2)[:19], false},
	}
	for _, tt := range tests {
		if got := inBenchNet(tt.p); got != tt.want {
			t.Errorf("%s: inBenchNet = %v; want %v", tt.name, got, tt.want)
		}
	}
}
