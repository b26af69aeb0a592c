// Package database is the SQL plumbing shared by the services: it opens
// SQLite (modernc.org/sqlite) or PostgreSQL (pgx) behind one *sql.DB, runs
// the service's embedded goose migrations, and classifies driver errors so
// domain stores can map them to their own sentinels. It knows nothing about
// any domain.
//
// Query text is portable when it uses $1, $2, ... placeholders: PostgreSQL
// requires them and modernc.org/sqlite binds $N to the N-th argument (reuse
// and any order included), so no rebinding step is needed.
package database
