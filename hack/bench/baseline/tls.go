//go:build benchtls

package main

import (
	"crypto/tls"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// cipherSuites are the TLS 1.2 suites the services offer
// (services/internal/platform/tlsfiles, which hack/ cannot import); TLS
// 1.3's are not configurable. Like the services, the baseline serves 1.2
// or 1.3, and a Go client negotiates 1.3.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverOptions serves TLS when args are a certificate file and its key
// file (PEM), plaintext when there are none. The files are read once:
// unlike the services', the baseline's certificate never rotates, which
// costs nothing per call either way (only handshakes see it).
func serverOptions(args []string) ([]grpc.ServerOption, error) {
	switch len(args) {
	case 0:
		return nil, nil
	case 2:
	default:
		return nil, errors.New("want ADDR CERT_FILE KEY_FILE")
	}
	pair, err := tls.LoadX509KeyPair(args[0], args[1])
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", args[0], args[1], err)
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12, CipherSuites: cipherSuites, Certificates: []tls.Certificate{pair},
	}))}, nil
}
