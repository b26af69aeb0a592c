// Package rpcerr builds the gRPC statuses every service's error mapping
// shares: InvalidArgument with google.rpc.BadRequest field violations, and
// the fallback for errors no domain sentinel matched. Each service still has
// exactly one function that maps its own sentinels; this package is what
// those functions have in common.
package rpcerr
