package password

import "time"

// HoldSlots takes n slots as a running computation would, so tests can
// queue callers behind work that never ends until release is called.
func HoldSlots(h *Hasher, n int) (release func()) {
	for range n {
		h.slots <- struct{}{}
	}
	return func() {
		for range n {
			<-h.slots
		}
	}
}

// SetComputationTime sets the moving average the queue estimate uses.
func SetComputationTime(h *Hasher, d time.Duration) { h.took.Store(int64(d)) }

// Waiting is how many callers are queued for a slot.
func Waiting(h *Hasher) int64 { return h.waiting.Load() }
