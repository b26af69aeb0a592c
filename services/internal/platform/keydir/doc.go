// Package keydir reads a directory of PEM keys laid out the way Kubernetes
// mounts a Secret, and keeps what it read current while the directory
// changes. Two key sets are built on it: the public verifier's (package
// authn, public halves only) and the Auth service's signing keys (private
// halves too). Keeping the directory rules here means both read a mounted
// Secret the same way, while only the Auth service ever holds a private key.
package keydir
