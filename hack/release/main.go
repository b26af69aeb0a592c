package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  release images -registry R -version V -service S -base TAR -binary OS/ARCH=FILE... [-out FILE]
  release verify -ref REF -version V -service S -platforms OS/ARCH,... [-sbom-dir DIR]
`

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(strings.TrimSpace(usage))
	}
	switch args[0] {
	case "images":
		return runImages(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], strings.TrimSpace(usage))
	}
}

// binaries is a repeatable -binary OS/ARCH=FILE flag.
type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(v string) error {
	p, file, ok := strings.Cut(v, "=")
	if !ok || file == "" {
		return fmt.Errorf("want OS/ARCH=FILE, got %q", v)
	}
	if _, err := parsePlatform(p); err != nil {
		return err
	}
	if _, dup := b[p]; dup {
		return fmt.Errorf("platform %s given twice", p)
	}
	b[p] = file
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
