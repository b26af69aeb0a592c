// Command auth runs the Gatehouse Auth service. Configuration comes from
// environment variables; see the README's configuration table.
// `auth healthcheck ADDR...` is the gRPC health client the image uses.
package main
