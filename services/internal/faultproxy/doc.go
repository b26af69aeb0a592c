// Package faultproxy is a TCP proxy that tests cut: it forwards to a real
// server (PostgreSQL, a Gatehouse service) and can drop every connection
// and refuse new ones, like a failover or a network partition, without
// touching the server itself or other tests that use it.
//
// It is for tests only; nothing in production code may import it.
package faultproxy
