// Package tlsfiles turns PEM files on disk into TLS for gRPC and HTTP
// servers and clients, and keeps them current: the files are re-read
// every ReloadInterval by grpc-go's pemfile certificate provider, so a
// certificate renewed by cert-manager (a Kubernetes Secret volume swaps
// its ..data link atomically) is used by the next handshake, with no
// restart; connections already open finish on the certificate they began
// with.
//
// Why not grpc-go's security/advancedtls, which wraps the same provider?
// Its servers either require a client certificate or ignore one. The User
// service needs the middle ground: grpcurl and other clients connect
// without a certificate, while the Auth service presents one so that
// VerifyPassword can check who is calling (see [PeerNames]). A plain
// crypto/tls configuration built per handshake from the provider's key
// material does both, for gRPC (through grpc-go's credentials package)
// and for the HTTP port alike.
//
// It is a platform package: it knows files, certificates and names, not
// which service may call what.
package tlsfiles
