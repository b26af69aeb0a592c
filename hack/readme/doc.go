// Package readme finds the README's runnable command blocks: fenced
// blocks whose info string is `sh run=<mode>`, where the mode names the
// `make run` they need (plain, tls: TLS=1, mtls: TLS=1
// TLS_CLIENT_AUTH=require). Its tests start hack/run.sh as `make run` does
// and paste each block into bash, so the walk-through a newcomer copies is
// the one CI ran; they also hold hack/run.sh to its promises (a busy port
// named at once, one copy per data directory, Ctrl-C exits 0).
package readme
