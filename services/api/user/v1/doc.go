// Package userv1 is the Go code generated from user.proto: the User
// service's messages and its gRPC client and server. The contract, with
// each method's errors and ErrorInfo reasons, is documented in the .proto
// (and served over reflection); edit it there and run `make proto`.
package userv1
