package failover

import (
	"context"
	"testing"
)

// BenchmarkDial is what a REMOTE list adds to each upstream dial (the dial
// itself not counted): the lock and the candidate plan.
func BenchmarkDial(b *testing.B) {
	ok := func(context.Context, string) (int, error) { return 1, nil }
	for _, tt := range []struct {
		name  string
		addrs []string
	}{
		{"single", []string{"a:1"}},
		{"two", []string{"a:1", "b:2"}},
		{"five", []string{"a:1", "b:2", "c:3", "d:4", "e:5"}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			s := New[int](tt.addrs, b.Logf)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Dial(ctx, ok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
