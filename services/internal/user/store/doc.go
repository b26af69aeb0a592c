// Package store keeps users in SQL: SQLite or PostgreSQL, through one set of
// queries. It implements user.Store.
package store
