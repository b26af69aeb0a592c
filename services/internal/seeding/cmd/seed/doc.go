// Command seed fills a User service database with N users and an Auth
// service database with M refresh families (one current token each),
// straight through SQL, for measuring how Gatehouse's cost grows with its
// data (make bench-scale). The rows are what the services write: the
// migrations create the schema, ids are UUIDv7, emails unique, every user
// has the same real argon2id hash (computed once) of -password, families
// belong to the users round-robin and expire in a month.
//
//	go run ./services/internal/seeding/cmd/seed -user-db URL -users N [-auth-db URL -families M] [-tokens FILE -token-count K]
//
// URLs are the services' DATABASE_URL forms (sqlite://PATH or
// postgres://...). -tokens writes K refresh tokens of seeded families, one
// per line, for a benchmark to present. Seeding runs in batches, each in
// one transaction (PostgreSQL: COPY), so a million users take seconds,
// not a million argon2id runs.
package main
