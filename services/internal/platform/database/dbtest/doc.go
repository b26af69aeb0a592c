// Package dbtest runs a test against every database dialect, so stores are
// tested on SQLite and PostgreSQL with the same code. For tests only.
package dbtest
