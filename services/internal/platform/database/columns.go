package database

import (
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"time"
)

// MigrationsDir returns the "migrations" directory of an embedded FS (one
// subdirectory per dialect, sqlite/ and postgres/), ready for Open. It
// panics only if the directory is missing, which the embed directive next
// to the call rules out at build time.
func MigrationsDir(embedded embed.FS) fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// Timestamp is t in UTC at the microsecond precision PostgreSQL keeps, so
// both databases return exactly what was written; a zero t means now.
func Timestamp(t, now time.Time) time.Time {
	if t.IsZero() {
		t = now
	}
	return t.UTC().Truncate(time.Microsecond)
}

// NullTimestamp stores a zero t as NULL, anything else as Timestamp does.
func NullTimestamp(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: Timestamp(t, t), Valid: true}
}

// TimeOrZero reads a nullable timestamp back: NULL is the zero time.
func TimeOrZero(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// EncodeStrings stores a list (roles) as a JSON array in one column that
// both databases can read and check, where a separate table would cost a
// join per read. nil is stored as [].
func EncodeStrings(list []string) (string, error) {
	if list == nil {
		list = []string{}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return "", fmt.Errorf("encode list: %w", err)
	}
	return string(b), nil
}

// DecodeStrings reads what EncodeStrings wrote; an empty array reads as nil.
func DecodeStrings(s string) ([]string, error) {
	var list []string
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}
