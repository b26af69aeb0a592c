//go:build !benchtls

package main

import (
	"errors"

	"google.golang.org/grpc"
)

// serverOptions of the plaintext build: no transport arguments.
func serverOptions(args []string) ([]grpc.ServerOption, error) {
	if len(args) > 0 {
		return nil, errors.New("a certificate and key need a build with -tags benchtls")
	}
	return nil, nil
}
