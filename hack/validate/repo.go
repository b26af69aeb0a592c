package validate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// rootModule is the first line of the repository's own go.mod.
const rootModule = "module github.com/gatehouse-dev/gatehouse\n"

// RepoRoot returns the Gatehouse repository root: $GATEHOUSE_ROOT when set,
// else the nearest parent of the working directory whose go.mod declares the
// root module (go test runs in hack/validate, two levels below it).
func RepoRoot() (string, error) {
	if dir := os.Getenv("GATEHOUSE_ROOT"); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte(rootModule)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found above the working directory; set GATEHOUSE_ROOT")
		}
		dir = parent
	}
}

// CopyTree copies the regular files and directories under src to dst
// (symlinks and other special files are refused).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
	})
}
