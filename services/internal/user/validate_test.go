package user

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzEmail: emails come from clients. Any input is refused with one
// violation, or yields a canonical address that is its own canonical form
// (one account, one spelling), NFC and NFKC-stable, lower-case, with no
// invisible characters and no white space. Never a panic.
func FuzzEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "Ada@Example.COM", "mu\u0308ller@example.com", "ａ@example.com",
		"\u0430da@example.com", "user@[127.0.0.1]", "a\u200b@example.com", "Bob <bob@example.com>", "", "@", "a@b", "\xff@example.com",
		"ad\u2028a@example.com", "\u2029ada@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v := &ValidationError{}
		out := normalizeEmail(v, "email", in)
		if len(v.Violations) > 0 {
			if out != "" || len(v.Violations) != 1 {
				t.Fatalf("refused %q with %d violations and output %q", in, len(v.Violations), out)
			}
			return
		}
		again := &ValidationError{}
		if normalizeEmail(again, "email", out) != out || len(again.Violations) > 0 {
			t.Fatalf("%q -> %q, which does not normalise to itself (%v)", in, out, again.Violations)
		}
		if !norm.NFC.IsNormalString(out) || norm.NFKC.String(out) != out || strings.IndexFunc(out, invisible) >= 0 ||
			strings.IndexFunc(out, unicode.IsSpace) >= 0 {
			t.Fatalf("%q -> %q is not canonical", in, out)
		}
	})
}

// FuzzDisplayName: names come from clients. Any input is refused with one
// violation, or yields a name that is its own enforced form, at most
// MaxDisplayNameLen runes, without control or format characters, and with
// at most maxCombiningMarks marks in a row. Never a panic.
func FuzzDisplayName(f *testing.F) {
	for _, s := range []string{"Ada", "  Zoë  Ünal ", "admin\u202egnp.exe", "Ad\u200ba", "Z\u0301\u0301", "ｆｕｌｌ", "a\x00b", "山田 太郎", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v := &ValidationError{}
		out := checkDisplayName(v, "display_name", in)
		if len(v.Violations) > 0 {
			if out != "" || len(v.Violations) != 1 {
				t.Fatalf("refused %q with %d violations and output %q", in, len(v.Violations), out)
			}
			return
		}
		again := &ValidationError{}
		if checkDisplayName(again, "display_name", out) != out || len(again.Violations) > 0 {
			t.Fatalf("%q -> %q, which does not enforce to itself (%v)", in, out, again.Violations)
		}
		if utf8.RuneCountInString(out) > MaxDisplayNameLen || strings.IndexFunc(out, invisible) >= 0 {
			t.Fatalf("%q -> %q breaks the rules", in, out)
		}
		marks := 0
		for _, r := range out {
			if unicode.In(r, unicode.Mn, unicode.Me) {
				marks++
			} else {
				marks = 0
			}
			if marks > maxCombiningMarks {
				t.Fatalf("%q -> %q stacks %d marks", in, out, marks)
			}
		}
	})
}
