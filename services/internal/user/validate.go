package user

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

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
// (identity.CanonicalEmail), which is what uniqueness is decided on.
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
	addr, err := mail.ParseAddress(email)
	// ParseAddress accepts `Name <a@b>`; only a bare address is an email.
	if err != nil || addr.Address != email || !strings.Contains(addr.Address[strings.LastIndex(addr.Address, "@"):], ".") {
		v.add(field, "must be an email address like name@example.com")
		return ""
	}
	return identity.CanonicalEmail(email)
}

func checkPassword(v *ValidationError, field, pw string) {
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		v.add(field, "must be valid UTF-8")
	case n < MinPasswordLen || n > MaxPasswordLen:
		v.add(field, fmt.Sprintf("must be %d to %d characters", MinPasswordLen, MaxPasswordLen))
	}
}

func checkDisplayName(v *ValidationError, field, name string) {
	switch {
	case !utf8.ValidString(name):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(name) > MaxDisplayNameLen:
		v.add(field, fmt.Sprintf("must be at most %d characters", MaxDisplayNameLen))
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		v.add(field, "must not contain control characters")
	}
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
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
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
