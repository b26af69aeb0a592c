// Package healthprobe is the `healthcheck` subcommand of both binaries: it
// asks gRPC servers for their grpc.health.v1 status and succeeds only if
// every one answers SERVING. The images have no shell and no other
// binary, so Docker's HEALTHCHECK and the chart's `helm test` pod run
//
//	/user healthcheck [-service NAME] [-timeout 3s] [-cacert CA.pem [-cert C.pem -key K.pem] [-servername NAME]] ADDR [ADDR...]
//
// With -cacert it speaks TLS, verifying the server against that bundle,
// and presents -cert/-key when the server asks (TLS_CLIENT_AUTH=require).
package healthprobe
