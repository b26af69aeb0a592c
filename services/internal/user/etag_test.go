package user

import (
	"errors"
	"strings"
	"testing"
)

func TestParseEtag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"1", 1, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"01", 0, false},
		{" 1", 0, false},
		{"1\n", 0, false},
		{"9223372036854775808", 0, false},
		{`W/"1"`, 0, false},
		{"１", 0, false}, // a fullwidth digit
		{strings.Repeat("9", 1000), 0, false},
	} {
		got, err := parseEtag(tt.in)
		var verr *ValidationError
		if tt.ok != (err == nil) || got != tt.want || (err != nil && !errors.As(err, &verr)) {
			t.Errorf("parseEtag(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzEtag: etags come from clients. Any input is refused with a
// validation error or names exactly one version, whose etag is the input
// itself: one version, one spelling. Never a panic.
func FuzzEtag(f *testing.F) {
	for _, s := range []string{"", "1", "42", "+1", "01", "-0", "9223372036854775807", "9223372036854775808", "\x001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseEtag(s)
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Violations) != 1 || verr.Violations[0].Field != "etag" {
				t.Fatalf("parseEtag(%q): unexpected error %v", s, err)
			}
			return
		}
		if s == "" {
			if v != 0 {
				t.Fatalf("empty etag = %d", v)
			}
			return
		}
		if v <= 0 || etag(User{Version: v}) != s {
			t.Fatalf("parseEtag(%q) = %d, whose etag is %q", s, v, etag(User{Version: v}))
		}
	})
}
