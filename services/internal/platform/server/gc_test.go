package server

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: DefaultGOGC applies unless GOGC is set.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	tests := []struct {
		name     string
		environ  []string
		wantGOGC int
	}{
		{"GOGC unset", []string{"PATH=/bin"}, DefaultGOGC},
		{"GOGC empty", []string{"GOGC="}, DefaultGOGC},
		{"GOGC set: the runtime read it, tuneGC leaves it", []string{"GOGC=100"}, 100},
		{"GOGC off", []string{"GOGC=off"}, 100},
		{"GOGC twice: the runtime reads the first", []string{"GOGC=100", "GOGC="}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			tuneGC(tt.environ)
			if got := debug.SetGCPercent(100); got != tt.wantGOGC {
				t.Errorf("GOGC = %d, want %d", got, tt.wantGOGC)
			}
		})
	}
}
