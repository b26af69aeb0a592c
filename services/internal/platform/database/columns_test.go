package database_test

import (
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
)

func TestStringsRoundTrip(t *testing.T) {
	for _, in := range [][]string{nil, {}, {"admin"}, {"admin", "service", `quo"te`}} {
		enc, err := database.EncodeStrings(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := database.DecodeStrings(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(in) == 0 && (enc != "[]" || out != nil) {
			t.Errorf("empty list %v stored as %q, read as %v", in, enc, out)
		}
		if len(in) > 0 && !slices.Equal(in, out) {
			t.Errorf("%v → %q → %v", in, enc, out)
		}
	}
	for _, bad := range []string{"", "{", `"admin"`, "[1,2]"} {
		if _, err := database.DecodeStrings(bad); err == nil {
			t.Errorf("DecodeStrings(%q) accepted garbage", bad)
		}
	}
}

func TestTimestamps(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	if got := database.Timestamp(time.Time{}, now); !got.Equal(now.Truncate(time.Microsecond)) || got.Location() != time.UTC {
		t.Errorf("Timestamp(zero) = %v", got)
	}
	if got := database.Timestamp(now, time.Time{}); got.Nanosecond()%1000 != 0 {
		t.Errorf("Timestamp kept nanoseconds: %v", got)
	}
	if nt := database.NullTimestamp(time.Time{}); nt.Valid {
		t.Error("zero time stored as non-NULL")
	}
	nt := database.NullTimestamp(now)
	if !nt.Valid || !database.TimeOrZero(nt).Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("NullTimestamp round trip: %v", nt)
	}
	if !database.TimeOrZero(database.NullTimestamp(time.Time{})).IsZero() {
		t.Error("NULL read back as non-zero")
	}
}
