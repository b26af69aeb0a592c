package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// tlsFlags are -cacert, -cert, -key and -servername. hack/ cannot import
// services/internal/platform/tlsfiles (Go's internal rule), and a load
// generator needs none of its reloading: the files are read once, at
// start.
type tlsFlags struct {
	caFile, certFile, keyFile string
	serverName                string
}

func (f tlsFlags) validate() error {
	var errs []error
	if (f.certFile == "") != (f.keyFile == "") {
		errs = append(errs, errors.New("-cert and -key are set together or not at all"))
	}
	if f.caFile == "" && (f.certFile != "" || f.keyFile != "" || f.serverName != "") {
		errs = append(errs, errors.New("-cert, -key and -servername need -cacert (without it the connections are plaintext)"))
	}
	return errors.Join(errs...)
}

// credentials are the connections' transport: plaintext without -cacert,
// else TLS trusting only the CAs of that bundle. An empty ServerName lets
// grpc-go verify the host of each address, the authority it dials.
func (f tlsFlags) credentials() (credentials.TransportCredentials, error) {
	if f.caFile == "" {
		return insecure.NewCredentials(), nil
	}
	caPEM, err := os.ReadFile(f.caFile)
	if err != nil {
		return nil, fmt.Errorf("-cacert: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("-cacert %s: no PEM certificate in it", f.caFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: f.serverName}
	if f.certFile != "" {
		pair, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			// The error never quotes the files' contents, one of them a key.
			return nil, fmt.Errorf("-cert %s and -key %s: %w", f.certFile, f.keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(cfg), nil
}
