// Package localproc starts Gatehouse's service binaries on this machine
// for the tools that measure them from outside (hack/bench, hack/abuse):
// processes on loopback ports with their own logs, a signing key, and
// what /proc says about their CPU and memory. Linux only.
package localproc
