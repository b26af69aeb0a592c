// Package inprocess holds tests that run the User and Auth services
// together in one process, on loopback TCP, with real SQLite files, real
// keys on disk, the real JWKS over HTTP and an in-memory span exporter:
// the README walk-through, key rotation and the cross-service trace, without
// a cluster.
package inprocess
