package forward

import (
	"testing"
	"unsafe"
)

// TestPairSize: every idle pair is one pair struct; 384 bytes is its size
// class (the next is 416). What only a redial or --reuse needs goes behind
// a pointer rather than into every pair.
func TestPairSize(t *testing.T) {
	if got := unsafe.Sizeof(pair{}); got > 384 {
		t.Fatalf("pair is %d bytes; want at most 384", got)
	}
}
