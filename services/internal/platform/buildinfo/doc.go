// Package buildinfo carries the version stamped into binaries at link time
// (make build, the Dockerfiles: -X .../buildinfo.Version=...).
package buildinfo
