package seeding

import (
	"fmt"
	"testing"
)

// TestPick: k distinct rows of n, each with its own place in the order
// picked, spread over the whole range rather than taken from its start
// (the oldest rows, whose pages a measurement would find warm).
func TestPick(t *testing.T) {
	tests := []struct{ n, k, want int }{
		{10_000_000, 4000, 4000},
		{10_000, 4000, 4000},
		{10_000, 6000, 6000}, // more than half: drawn from a permutation
		{100, 100, 100},
		{60, 200, 60}, // more tokens than families: every family
		{10, 0, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of %d", tt.k, tt.n), func(t *testing.T) {
			got := pick(tt.n, tt.k)
			if len(got) != tt.want {
				t.Fatalf("%d picked, want %d", len(got), tt.want)
			}
			places := make([]bool, len(got))
			inLastHalf := 0
			for i, at := range got {
				if i < 0 || i >= tt.n {
					t.Fatalf("picked %d, outside 0..%d", i, tt.n-1)
				}
				if at < 0 || at >= len(got) || places[at] {
					t.Fatalf("place %d out of range or given twice", at)
				}
				places[at] = true
				if i >= tt.n/2 {
					inLastHalf++
				}
			}
			// A uniform pick puts about half in the last half; the
			// first k rows would put none there while k <= n/2.
			if tt.want >= 100 && tt.want < tt.n && (inLastHalf < tt.want/3 || inLastHalf > tt.want*2/3) {
				t.Errorf("%d of %d picks in the last half of the rows, want about half", inLastHalf, tt.want)
			}
		})
	}
}
