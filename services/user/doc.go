// Command user runs the Gatehouse User service. Configuration comes from
// environment variables; see the README's configuration table.
// `user healthcheck ADDR...` is the gRPC health client the image uses.
package main
