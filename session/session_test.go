package session

import (
	"testing"
	"time"
)

// The ring keeps the last max records, in ID order whatever order they
// ended in, and counts the ones it let go.
func TestRing(t *testing.T) {
	for _, tt := range []struct {
		name    string
		max     int
		ids     []uint64 // in the order the connections ended
		want    []uint64
		dropped uint64
	}{
		{"empty", 3, nil, []uint64{}, 0},
		{"under the bound", 3, []uint64{2, 1}, []uint64{1, 2}, 0},
		{"full", 3, []uint64{3, 1, 2}, []uint64{1, 2, 3}, 0},
		{"over the bound", 3, []uint64{1, 2, 3, 5, 4}, []uint64{3, 4, 5}, 2},
		{"default bound", 0, []uint64{1}, []uint64{1}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(tt.max)
			for _, id := range tt.ids {
				r.Add(Record{ID: id})
			}
			recs, dropped := r.Snapshot()
			got := []uint64{}
			for _, rec := range recs {
				got = append(got, rec.ID)
			}
			if len(got) != len(tt.want) || dropped != tt.dropped {
				t.Fatalf("got %v, %d dropped; want %v, %d dropped", got, dropped, tt.want, tt.dropped)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v; want %v", got, tt.want)
				}
			}
		})
	}
	if r := NewRing(0); r.max != DefaultMaxRecords {
		t.Fatalf("NewRing(0) keeps %d; want %d", r.max, DefaultMaxRecords)
	}
}

func TestMillis(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want float64
	}{{0, 0}, {1500 * time.Microsecond, 1.5}, {2 * time.Second, 2000}, {999 * time.Nanosecond, 0}} {
		if got := Millis(tt.d); got != tt.want {
			t.Errorf("Millis(%v) = %v; want %v", tt.d, got, tt.want)
		}
	}
}
