// Command keygen writes a new signing key for the Auth service into a key
// directory, named by date so the newest sorts last: keys/2026-11-21.pem.
// It is what `make keys` runs; openssl works just as well (see README).
package main
