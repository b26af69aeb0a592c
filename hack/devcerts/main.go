package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-dev/gatehouse/hack/pki"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devcerts:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("devcerts", flag.ContinueOnError)
	dir := fs.String("dir", ".data/tls", "where to write the CA and the certificates")
	if err := fs.Parse(args); err != nil {
		return err
	}
	leaves := []struct {
		name  string
		names []string
	}{
		{"user", []string{"localhost", "127.0.0.1", "::1"}},
		{"auth", []string{"localhost", "127.0.0.1", "::1", "gatehouse-auth"}},
		{"client", []string{"gatehouse-dev-client"}},
	}
	fresh := true
	for _, l := range leaves {
		if !validFor(filepath.Join(*dir, l.name), 24*time.Hour) {
			fresh = false
		}
	}
	if fresh {
		return nil
	}
	ca, err := pki.NewCA("gatehouse development CA", 365*24*time.Hour)
	if err != nil {
		return err
	}
	for _, l := range leaves {
		req := pki.Request{Names: l.names, NotAfter: time.Now().Add(90 * 24 * time.Hour)}
		if _, _, err := ca.IssueFiles(filepath.Join(*dir, l.name), req); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(*dir, "ca.crt"), ca.PEM, 0o644); err != nil { //nolint:gosec // a CA certificate is public
		return err
	}
	fmt.Printf("devcerts: wrote a development CA and certificates under %s\n", *dir)
	return nil
}

// validFor reports whether dir holds a certificate and key that match and
// stay valid for d.
func validFor(dir string, d time.Duration) bool {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil || pair.Leaf == nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); errors.Is(err, os.ErrNotExist) {
		return false
	}
	return time.Now().Add(d).Before(pair.Leaf.NotAfter)
}
