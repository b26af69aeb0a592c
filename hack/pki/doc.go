// Package pki issues throwaway certificate authorities and certificates:
// the development CA of `make run TLS=1` (hack/devcerts) and the
// certificates the TLS tests handshake with, rotate and expire. It is not
// for production: keys live in memory and on local disk, unprotected.
package pki
