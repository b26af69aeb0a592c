package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const version = "v9.8.7-test"

// fixture is what a release run starts from: a base image as `docker save`
// writes it (labels, user, entrypoint, /etc files and the host binary) and
// the service cross-compiled for each platform.
type fixture struct {
	base     string
	bins     map[string]string // OS/ARCH -> file
	registry string            // host:port of a registry on loopback
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// A program with one dependency-free main package and a version stamp
	// the way the Makefile sets it.
	must(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/gatehouse\n\ngo 1.24\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(src, "services", "user"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "services", "user", "main.go"), []byte("package main\n\nvar Version = \"dev\"\n\nfunc main() { println(Version) }\n"), 0o644))
	bins := map[string]string{}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		goos, goarch, _ := strings.Cut(p, "/")
		out := filepath.Join(dir, goarch, "user")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.Version="+version+" -X x/buildinfo.Version="+version, "-o", out, "./services/user")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", p, err, b)
		}
		bins[p] = out
	}

	base := writeBase(t, filepath.Join(dir, "base.tar"), bins["linux/amd64"], time.Unix(1700000000, 0))
	srv := httptest.NewServer(registry.New(registry.Logger(nullLogger())))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return fixture{base: base, bins: bins, registry: u.Host + "/gatehouse"}
}

// writeBase writes the base image as docker save would: the amd64 binary
// plus the files the Dockerfile adds, with the Dockerfile's kind of config.
// built is when Docker built it: the config's time and the files' times,
// which vary from build to build; the creation label does not.
func writeBase(t *testing.T, path, amd64 string, built time.Time) string {
	t.Helper()
	layer := tarLayer(t, map[string]string{
		"etc/passwd": "gatehouse:x:65532:65532::/data:/sbin/nologin\n",
		"user":       string(mustRead(t, amd64)),
	}, built)
	img, err := mutate.AppendLayers(empty.Image, layer)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: built}
	cf.Config = v1.Config{
		User:       "65532:65532",
		Image:      fmt.Sprintf("sha256:%064x", built.Unix()), // Docker's parent step, new every build
		Entrypoint: []string{"/user"},
		Env:        []string{"DATABASE_URL=sqlite:///data/user.db"},
		Labels: map[string]string{
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.licenses": "Apache-2.0",
			"org.opencontainers.image.created":  "2026-12-01T10:00:00Z",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	tag, _ := name.NewTag("gatehouse.local/gatehouse-user:" + version)
	must(t, tarball.WriteToFile(path, tag, img))
	return path
}

func (f fixture) push(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	args := []string{"images", "-registry", f.registry, "-version", version, "-service", "user", "-base", f.base}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		args = append(args, "-binary", p+"="+f.bins[p])
	}
	var out, errb bytes.Buffer
	err := run(append(args, extra...), &out, &errb)
	return strings.TrimSpace(out.String()), err
}

// TestReleaseIsReproducible: two Docker builds of the same commit differ
// in their build times; the release pushed from either is the same bytes.
func TestReleaseIsReproducible(t *testing.T) {
	f := newFixture(t)
	first, err := f.push(t)
	if err != nil {
		t.Fatal(err)
	}
	f.base = writeBase(t, filepath.Join(t.TempDir(), "rebuilt.tar"), f.bins["linux/amd64"], time.Unix(1800000000, 0))
	second, err := f.push(t)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("the same commit released twice gave two indexes:\n%s\n%s", first, second)
	}
}

func TestReleaseImagesThenVerify(t *testing.T) {
	f := newFixture(t)
	ref, err := f.push(t)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ref, f.registry+"/gatehouse-user:"+version+"@sha256:") {
		t.Fatalf("printed %q", ref)
	}
	var out bytes.Buffer
	err = run([]string{"verify", "-ref", f.registry + "/gatehouse-user:" + version, "-version", version, "-service", "user"}, &out, &out)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	for _, want := range []string{"linux/amd64: EM_X86_64", "linux/arm64/v8: EM_AARCH64"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verify printed %q, want a line with %q", out.String(), want)
		}
	}
}

// The guards: each case is a release that must not be pushed or must not
// pass verification.
func TestReleaseRefuses(t *testing.T) {
	f := newFixture(t)
	// A -binary that is not of the platform it is given for.
	args := []string{"images", "-registry", f.registry, "-version", version, "-service", "user", "-base", f.base,
		"-binary", "linux/arm64=" + f.bins["linux/amd64"]}
	if err := run(args, new(bytes.Buffer), new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "built for EM_X86_64, want EM_AARCH64") {
		t.Errorf("amd64 binary as arm64: %v", err)
	}
	// A base image built for another version.
	if err := run([]string{"images", "-registry", f.registry, "-version", "v0.0.1", "-service", "user", "-base", f.base,
		"-binary", "linux/amd64=" + f.bins["linux/amd64"]}, new(bytes.Buffer), new(bytes.Buffer)); err == nil ||
		!strings.Contains(err.Error(), `labelled version "`+version+`", not "v0.0.1"`) {
		t.Errorf("version mismatch: %v", err)
	}
	// An index that lacks a promised platform.
	if _, err := f.push(t); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"verify", "-ref", f.registry + "/gatehouse-user:" + version, "-version", version, "-service", "user",
		"-platforms", "linux/amd64,linux/arm64,linux/s390x"}, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "holds platforms [linux/amd64 linux/arm64], want [linux/amd64 linux/arm64 linux/s390x]") {
		t.Errorf("missing platform: %v", err)
	}
	// The wrong version asked of verify.
	err = run([]string{"verify", "-ref", f.registry + "/gatehouse-user:" + version, "-version", "v1.0.0", "-service", "user"}, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), `labelled version "`+version+`", want "v1.0.0"`) {
		t.Errorf("wrong version: %v", err)
	}
	// A tag that is a single image, not an index.
	ref, _ := name.ParseReference(f.registry + "/gatehouse-user:" + version)
	idx, err := remote.Index(ref)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	single, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	plain, _ := name.NewTag(f.registry + "/gatehouse-user:single")
	must(t, remote.Write(plain, single))
	err = run([]string{"verify", "-ref", plain.String(), "-version", version, "-service", "user"}, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "want an OCI image index") {
		t.Errorf("single image: %v", err)
	}
}

func TestCheckSBOM(t *testing.T) {
	self, err := os.Executable()
	must(t, err)
	bi, err := buildinfo.ReadFile(self)
	must(t, err)
	if len(bi.Deps) == 0 {
		t.Skip("the test binary lists no modules")
	}
	type pkg struct {
		Name        string `json:"name"`
		VersionInfo string `json:"versionInfo"`
	}
	full := []pkg{{"stdlib", bi.GoVersion}}
	for _, d := range bi.Deps {
		full = append(full, pkg{d.Path, d.Version})
	}
	const repo, digest = "localhost:5001/gatehouse/gatehouse-user", "sha256:6cf6a40bfd6f3a5aadbca7a3278d1169abbd49fc8241a9672fc93a4740bf8c5b"
	type root struct {
		SPDXID      string `json:"SPDXID"`
		Name        string `json:"name"`
		VersionInfo string `json:"versionInfo"`
	}
	writeFor := func(pkgs []pkg, r root) string {
		all := []any{r}
		for _, p := range pkgs {
			all = append(all, p)
		}
		b, _ := json.Marshal(map[string]any{"spdxVersion": "SPDX-2.3", "packages": all})
		f := filepath.Join(t.TempDir(), "sbom.json")
		must(t, os.WriteFile(f, b, 0o644))
		return f
	}
	ours := root{"SPDXRef-DocumentRoot-Image-x", repo, digest}
	write := func(pkgs []pkg) string { return writeFor(pkgs, ours) }
	for _, tc := range []struct {
		name    string
		file    string
		wantErr string
	}{
		{"complete", write(full), ""},
		{"one module missing", write(full[:len(full)-1]), "lacks 1 of the binary's"},
		{"wrong version", write(append(append([]pkg{}, full[:len(full)-1]...), pkg{full[len(full)-1].Name, "v0.0.0-wrong"})), "lacks 1 of the binary's"},
		{"no stdlib", write(full[1:]), "stdlib@"},
		{"another image's", writeFor(full, root{"SPDXRef-DocumentRoot-Image-x", repo, "sha256:" + strings.Repeat("0", 64)}), "describes"},
		{"no document root", writeFor(full, root{"SPDXRef-Package-x", repo, digest}), "describes"},
		{"not JSON", func() string {
			f := filepath.Join(t.TempDir(), "x")
			must(t, os.WriteFile(f, []byte("<html>"), 0o644))
			return f
		}(), "not SPDX JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkSBOM(tc.file, bi, repo, digest)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestHasStamp(t *testing.T) {
	for _, tc := range []struct {
		bin  string
		want bool
	}{
		{"xxv1.0.0yy", true},
		{"dep\tgithub.com/alexedwards/argon2id\tv1.0.0\th1:abc", false},
		{"dep\tx\tv1.0.0\th1:abc\n...v1.0.0", true},
		{"", false},
	} {
		if got := hasStamp([]byte(tc.bin), "v1.0.0"); got != tc.want {
			t.Errorf("hasStamp(%q) = %v", tc.bin, got)
		}
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "linux/arm64": "linux/arm64/v8", "linux/arm/v7": "linux/arm/v7",
		"linux": "", "": "", "/amd64": "", "a/b/c/d": "",
	} {
		p, err := parsePlatform(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q: no error", in)
			}
			continue
		}
		if err != nil || p.String() != want {
			t.Errorf("%q: %v %v, want %s", in, p.String(), err, want)
		}
	}
}

func tarLayer(t *testing.T, files map[string]string, mtime time.Time) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}))
	for _, n := range []string{"etc/passwd", "user"} {
		must(t, tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(files[n])), ModTime: mtime}))
		_, err := tw.Write([]byte(files[n]))
		must(t, err)
	}
	must(t, tw.Close())
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	must(t, err)
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	must(t, err)
	return b
}

func nullLogger() *log.Logger { return log.New(io.Discard, "", 0) }
