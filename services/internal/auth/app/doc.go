// Package app assembles the Auth service process: configuration, signing
// keys, the refresh-token store, the User service client, telemetry and
// the shared gRPC server. services/auth/main.go calls Run; tests call New
// and Serve on their own listeners.
package app
