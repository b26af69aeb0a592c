package store

import "testing"

// SetPurgeBatch makes PurgeExpired delete at most n families per statement
// until the test ends.
func SetPurgeBatch(t testing.TB, n int) {
	old := purgeBatch
	purgeBatch = n
	t.Cleanup(func() { purgeBatch = old })
}
