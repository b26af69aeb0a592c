// Package app assembles the User service process: configuration, storage,
// key source, telemetry and the shared gRPC server. services/user/main.go
// calls Run; tests call New and Serve on their own listeners.
package app
