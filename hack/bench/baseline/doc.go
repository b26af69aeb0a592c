// Command baseline is the bare grpc-go server `make bench` measures
// Gatehouse against: the same GetUser RPC and response shape, answered
// from memory with no interceptors, auth, metrics, tracing or storage. It
// is the limit of the stack on this machine.
//
//	baseline [ADDR [CERT_FILE KEY_FILE]]
//
// Built with -tags benchtls (bench -tls builds it so), it serves TLS with
// the PEM certificate and key named after the address, as the services
// do with TLS on: a TLS run then compares TLS with TLS. Without the tag
// the binary holds no TLS server code, so a plaintext run's baseline is
// what it always was.
package main
