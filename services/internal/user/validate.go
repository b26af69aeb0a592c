package user

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nbutton23/zxcvbn-go"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"

	"github.com/gatehouse-dev/gatehouse/services/internal/identity"
)

// Input limits. Passwords are capped so argon2id cost stays bounded and
// long-password denial of service is impossible.
const (
	MinPasswordLen    = 8
	MaxPasswordLen    = 128
	MaxDisplayNameLen = 100
	MaxEmailLen       = 254
	DefaultPageSize   = 50
	MaxPageSize       = 1000
)

// normalizeEmail checks an address and returns its canonical form
// (identity.CanonicalEmail), which is what uniqueness is decided on. Two
// addresses that look the same must be the same account or not both
// exist, so beyond the syntax it refuses compatibility forms (fullwidth
// "ａ"), a mix of scripts within the local part or a domain label (Latin
// with a Cyrillic "а"), invisible format characters, white space of any
// script, and IP-literal domains (user@[127.0.0.1]).
func normalizeEmail(v *ValidationError, field, email string) string {
	switch {
	case email == "":
		v.add(field, "required")
		return ""
	case !utf8.ValidString(email):
		v.add(field, "must be valid UTF-8")
		return ""
	case len(email) > MaxEmailLen:
		v.add(field, fmt.Sprintf("must be at most %d bytes", MaxEmailLen))
		return ""
	}
	nfc := norm.NFC.String(email)
	addr, err := mail.ParseAddress(nfc)
	// ParseAddress accepts `Name <a@b>`; only a bare address is an email.
	if err != nil || addr.Address != nfc || !strings.Contains(addr.Address[strings.LastIndex(addr.Address, "@"):], ".") {
		v.add(field, "must be an email address like name@example.com")
		return ""
	}
	at := strings.LastIndex(nfc, "@")
	local, domain := nfc[:at], nfc[at+1:]
	switch {
	case strings.HasPrefix(domain, "["):
		v.add(field, "must have a domain name, not an IP address")
		return ""
	case norm.NFKC.String(nfc) != nfc:
		v.add(field, "must not use compatibility forms such as fullwidth letters; type the plain characters")
		return ""
	case strings.IndexFunc(nfc, invisible) >= 0:
		v.add(field, "must not contain control or invisible format characters")
		return ""
	case strings.IndexFunc(nfc, unicode.IsSpace) >= 0:
		// net/mail takes non-ASCII white space (U+2028, U+2029, U+1680,
		// which NFKC keeps) for a letter; inside an address it makes a
		// look-alike, and in front CanonicalEmail would trim it away into
		// another account's address.
		v.add(field, "must not contain white space")
		return ""
	}
	for _, part := range append([]string{local}, strings.Split(domain, ".")...) {
		if mixedScripts(part) {
			v.add(field, "must not mix scripts within a part (such as Latin and Cyrillic letters), which makes look-alike addresses")
			return ""
		}
	}
	return identity.CanonicalEmail(nfc)
}

// invisible reports control and format characters (bidi controls, zero
// width spaces): nothing a person reads, everything a look-alike needs.
func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// scripts the letters of an address may come from, checked in this order;
// Han, Hiragana and Katakana are one writing system (Japanese) here.
var scripts = []struct {
	name  string
	table *unicode.RangeTable
}{
	{"Latin", unicode.Latin}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek},
	{"Armenian", unicode.Armenian}, {"Hebrew", unicode.Hebrew}, {"Arabic", unicode.Arabic},
	{"Devanagari", unicode.Devanagari}, {"Thai", unicode.Thai}, {"Hangul", unicode.Hangul},
	{"Japanese", unicode.Han}, {"Japanese", unicode.Hiragana}, {"Japanese", unicode.Katakana},
	{"Georgian", unicode.Georgian}, {"Ethiopic", unicode.Ethiopic},
}

// mixedScripts reports whether the letters of s come from more than one
// script. Digits, punctuation and combining marks belong to none.
func mixedScripts(s string) bool {
	seen := ""
	for _, r := range s {
		if !unicode.IsLetter(r) {
			continue
		}
		name := "other"
		for _, sc := range scripts {
			if unicode.Is(sc.table, r) {
				name = sc.name
				break
			}
		}
		if seen == "" {
			seen = name
		} else if name != seen {
			return true
		}
	}
	return false
}

// strengthRunes is how much of a password the strength estimator reads:
// its cost grows faster than the length (a 32-rune keyboard walk takes
// 9 ms, 64 runes several times that), and what makes a password
// guessable shows in its first 32.
const strengthRunes = 32

// minStrength is the lowest zxcvbn score accepted: 2 ("somewhat
// guessable") still refuses every common password, keyboard walk and
// dictionary word with digits, which is what NIST SP 800-63B asks to
// refuse, while passphrases of a few words pass easily.
const minStrength = 2

// checkPassword applies NIST SP 800-63B: 8 to 128 characters, anything
// allowed (spaces too, for passphrases), but not only white space, and not
// a password that is common or easy to guess, as github.com/nbutton23/
// zxcvbn-go estimates it with related (the email, the display name, and
// their parts) counted as known to the attacker.
func checkPassword(v *ValidationError, field, pw string, related ...string) {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		v.add(field, "must be valid UTF-8")
	case n < MinPasswordLen || n > MaxPasswordLen:
		v.add(field, fmt.Sprintf("must be %d to %d characters", MinPasswordLen, MaxPasswordLen))
	case strings.TrimSpace(pw) == "":
		v.add(field, "must not be only white space")
	default:
		prefix := pw
		if n > strengthRunes {
			prefix = string([]rune(pw)[:strengthRunes])
		}
		inputs := relatedWords(related)
		if zxcvbn.PasswordStrength(prefix, inputs).Score < minStrength {
			v.add(field, "too easy to guess: a common password, a pattern, or close to the email or name; a few unrelated words make a strong passphrase")
		}
	}
}

// relatedWords are what an attacker knows of the account, for the
// strength estimate: the estimator matches its inputs whole, so the email
// and the name are also split into their parts (the local part, each
// domain label, each word of the name), and "ada2026" counts as guessable
// for ada@example.com.
func relatedWords(related []string) []string {
	var out []string
	for _, r := range related {
		if r == "" {
			continue
		}
		out = append(out, r)
		for _, w := range strings.FieldsFunc(r, func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) }) {
			if utf8.RuneCountInString(w) >= 3 {
				out = append(out, w)
			}
		}
	}
	return out
}

// maxCombiningMarks bounds the marks stacked on one character: enough for
// any real script, far too few for text that spills over the lines above
// and below it.
const maxCombiningMarks = 4

// checkDisplayName enforces the PRECIS Nickname profile (RFC 8266,
// golang.org/x/text/secure/precis): NFKC, one space between words, and no
// control, format (bidi override, zero width) or unassigned characters.
// It returns the enforced form, which is what is stored.
func checkDisplayName(v *ValidationError, field, name string) string {
	switch {
	case !utf8.ValidString(name):
		v.add(field, "must be valid UTF-8")
		return ""
	case utf8.RuneCountInString(name) > MaxDisplayNameLen:
		v.add(field, fmt.Sprintf("must be at most %d characters", MaxDisplayNameLen))
		return ""
	case strings.TrimSpace(name) == "":
		return ""
	}
	out, err := precis.Nickname.String(name)
	if err != nil {
		v.add(field, "must not contain control, invisible (bidi, zero width) or unassigned characters")
		return ""
	}
	if utf8.RuneCountInString(out) > MaxDisplayNameLen {
		// NFKC can expand a character into many (U+FDFA into 18): the
		// limit is on what is stored.
		v.add(field, fmt.Sprintf("must be at most %d characters once normalised", MaxDisplayNameLen))
		return ""
	}
	marks := 0
	for _, r := range out {
		if unicode.In(r, unicode.Mn, unicode.Me) {
			if marks++; marks > maxCombiningMarks {
				v.add(field, fmt.Sprintf("at most %d combining marks on one character", maxCombiningMarks))
				return ""
			}
			continue
		}
		marks = 0
	}
	return out
}

// MaxRoles is the most roles a request may list: every role name there is
// (assignable or not). Longer lists are refused before any item is looked
// at, so their cost does not grow with their length.
const MaxRoles = 2

// checkRoles validates roles an admin assigns and returns them without
// duplicates. Only identity.AssignableRoles pass: "service" is the Auth
// service's own identity (it unlocks VerifyPassword) and no account can be
// given it.
func checkRoles(v *ValidationError, field string, roles []string) []string {
	if len(roles) > MaxRoles {
		v.add(field, fmt.Sprintf("at most %d roles, got %d", MaxRoles, len(roles)))
		return nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(roles))
	assignable := identity.AssignableRoles()
	for _, r := range roles {
		switch {
		case r == identity.RoleService:
			v.add(field, `role "service" belongs to the Auth service's own identity and cannot be assigned`)
			continue
		case !slices.Contains(assignable, r):
			v.add(field, fmt.Sprintf("unknown role %q; assignable roles: %s", truncate(r, 32), strings.Join(assignable, ", ")))
			continue
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

func checkID(v *ValidationError, field, id string) {
	if id == "" {
		v.add(field, "required")
		return
	}
	if !identity.IsUserID(id) {
		v.add(field, "must be a UUID")
	}
}

// truncate keeps error messages bounded when echoing a bad value.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		return "(invalid UTF-8)"
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
