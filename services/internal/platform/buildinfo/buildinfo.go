// Package buildinfo carries the version stamped into binaries at link time
// (make build, the Dockerfiles: -X .../buildinfo.Version=...).
package buildinfo

// Version is the release or git description of the build; "dev" when built
// without the Makefile.
var Version = "dev"
