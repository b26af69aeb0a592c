package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// remoteTimeout bounds every registry conversation of one command.
const remoteTimeout = 5 * time.Minute

func withTimeout() (remote.Option, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	return remote.WithContext(c), cancel
}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkBinary refuses a binary that would not run on p: a static Go
// executable of p's OS and architecture.
func checkBinary(b []byte, p v1.Platform) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	want, ok := elfMachine[p.Architecture]
	if !ok {
		return fmt.Errorf("architecture %s: only %v are known", p.Architecture, keys(elfMachine))
	}
	if f.Machine != want {
		return fmt.Errorf("built for %s, want %s (%s)", f.Machine, want, p)
	}
	if slices.ContainsFunc(f.Progs, func(pr *elf.Prog) bool { return pr.Type == elf.PT_INTERP }) {
		return errors.New("dynamically linked: a FROM scratch image needs CGO_ENABLED=0")
	}
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("no Go build information: %w", err)
	}
	for _, s := range bi.Settings {
		if (s.Key == "GOOS" && s.Value != p.OS) || (s.Key == "GOARCH" && s.Value != p.Architecture) {
			return fmt.Errorf("build setting %s=%s, want %s", s.Key, s.Value, p)
		}
	}
	return nil
}

// runVerify checks a pushed release image from the registry alone, as a
// user's cluster would see it: an OCI index with exactly the platforms
// promised, each a runnable binary of its architecture under one shared
// configuration stamped with the version, and (-sbom-dir) an SBOM that
// lists every Go module the binary was built from.
func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	refStr := fs.String("ref", "", "the index to verify: REGISTRY/PATH/gatehouse-<service>:<version>")
	version := fs.String("version", "", "the version the images must be labelled with")
	service := fs.String("service", "", "user or auth")
	platformList := fs.String("platforms", "linux/amd64,linux/arm64", "the platforms the index must hold, exactly")
	sbomDir := fs.String("sbom-dir", "", "directory of <service>-<os>-<arch>.spdx.json SBOMs (from the signed attestations) to check against each binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *refStr == "" || *version == "" || *service == "" {
		return errors.New("verify: -ref, -version and -service are required")
	}
	ref, err := name.ParseReference(*refStr)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	opt, cancel := withTimeout()
	defer cancel()
	desc, err := remote.Get(ref, opt)
	if err != nil {
		return fmt.Errorf("verify: %s: %w", ref, err)
	}
	if desc.MediaType != types.OCIImageIndex {
		return fmt.Errorf("verify: %s is %s, want an OCI image index", ref, desc.MediaType)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return fmt.Errorf("verify: %s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	want := strings.Split(*platformList, ",")
	var got []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			return fmt.Errorf("verify: %s: manifest %s has no platform", ref, m.Digest)
		}
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("verify: %s holds platforms %v, want %v", ref, got, want)
	}

	var first *v1.Config
	for _, m := range im.Manifests {
		p := *m.Platform
		img, err := idx.Image(m.Digest)
		if err != nil {
			return fmt.Errorf("verify: %s: %w", p, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return fmt.Errorf("verify: %s: %w", p, err)
		}
		if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
			return fmt.Errorf("verify: %s: config says %s/%s", p, cfg.OS, cfg.Architecture)
		}
		if v := cfg.Config.Labels["org.opencontainers.image.version"]; v != *version {
			return fmt.Errorf("verify: %s: labelled version %q, want %q", p, v, *version)
		}
		if l := cfg.Config.Labels["org.opencontainers.image.licenses"]; l == "" || l == "NOASSERTION" {
			return fmt.Errorf("verify: %s: no SPDX licence label", p)
		}
		if u := cfg.Config.User; u == "" || u == "0" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0:") {
			return fmt.Errorf("verify: %s: runs as %q, want a non-root user", p, u)
		}
		if first == nil {
			first = &cfg.Config
		} else if !reflect.DeepEqual(*first, cfg.Config) {
			return fmt.Errorf("verify: %s: runtime config differs from the other platforms'", p)
		}
		fsys, err := flatten(img)
		if err != nil {
			return fmt.Errorf("verify: %s: %w", p, err)
		}
		binPath := "/" + *service
		i := slices.IndexFunc(fsys, func(e entry) bool { return e.hdr.Name == binPath })
		if i < 0 {
			return fmt.Errorf("verify: %s: no %s in the image", p, binPath)
		}
		if ep := cfg.Config.Entrypoint; len(ep) == 0 || ep[0] != binPath {
			return fmt.Errorf("verify: %s: entrypoint %v, want %s", p, ep, binPath)
		}
		bin := fsys[i].data
		if err := checkBinary(bin, p); err != nil {
			return fmt.Errorf("verify: %s: %s: %w", p, binPath, err)
		}
		bi, _ := buildinfo.Read(bytes.NewReader(bin))
		if !strings.HasSuffix(bi.Path, "/services/"+*service) {
			return fmt.Errorf("verify: %s: %s is the program %s, not the %s service", p, binPath, bi.Path, *service)
		}
		// -trimpath keeps -ldflags out of the build information, so the
		// stamp is looked for as the string -X wrote, not as a module's
		// version in the embedded module list ("\tv1.0.0\t").
		if !hasStamp(bin, *version) {
			return fmt.Errorf("verify: %s: %s does not carry the version string %q (-X ...buildinfo.Version)", p, binPath, *version)
		}
		line := fmt.Sprintf("%s@%s %s: %s %s, %d modules, user %s", ref.Context(), m.Digest, p, elfMachine[p.Architecture], bi.GoVersion, len(bi.Deps), cfg.Config.User)
		if *sbomDir != "" {
			f := filepath.Join(*sbomDir, fmt.Sprintf("%s-%s-%s.spdx.json", *service, p.OS, p.Architecture))
			n, err := checkSBOM(f, bi, ref.Context().String(), m.Digest.String())
			if err != nil {
				return fmt.Errorf("verify: %s: SBOM: %w", p, err)
			}
			line += fmt.Sprintf("; its SBOM describes this digest and lists all %d modules and %s", n, bi.GoVersion)
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// hasStamp reports whether version occurs in bin other than as a module
// version of the embedded module list, where it stands between tabs.
func hasStamp(bin []byte, version string) bool {
	v := []byte(version)
	for i := 0; ; {
		j := bytes.Index(bin[i:], v)
		if j < 0 {
			return false
		}
		at := i + j
		if at == 0 || bin[at-1] != '\t' {
			return true
		}
		i = at + 1
	}
}

// spdx is the part of an SPDX 2.3 JSON document checked here.
type spdx struct {
	SPDXVersion string `json:"spdxVersion"`
	Packages    []struct {
		SPDXID      string `json:"SPDXID"`
		Name        string `json:"name"`
		VersionInfo string `json:"versionInfo"`
	} `json:"packages"`
}

// checkSBOM reads an SPDX document and requires it to describe the image
// repo@digest (syft's document root names the image and its manifest
// digest), and every module the binary was linked from, and its Go
// standard library, to be listed at the version the binary carries: an
// SBOM of another image, or one that misses a module, is no inventory.
func checkSBOM(file string, bi *buildinfo.BuildInfo, repo, digest string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var doc spdx
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, fmt.Errorf("%s: not SPDX JSON: %w", file, err)
	}
	if !strings.HasPrefix(doc.SPDXVersion, "SPDX-") {
		return 0, fmt.Errorf("%s: spdxVersion %q", file, doc.SPDXVersion)
	}
	have := map[string]bool{}
	var roots []string
	for _, p := range doc.Packages {
		have[p.Name+"@"+p.VersionInfo] = true
		if strings.HasPrefix(p.SPDXID, "SPDXRef-DocumentRoot-") {
			roots = append(roots, p.Name+"@"+p.VersionInfo)
		}
	}
	if !slices.Contains(roots, repo+"@"+digest) {
		return 0, fmt.Errorf("%s describes %v, not %s@%s", file, roots, repo, digest)
	}
	var missing []string
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if !have[d.Path+"@"+d.Version] {
			missing = append(missing, d.Path+"@"+d.Version)
		}
	}
	if std := "stdlib@" + bi.GoVersion; !have[std] && !have["stdlib@"+strings.TrimPrefix(bi.GoVersion, "go")] {
		missing = append(missing, std)
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("%s lacks %d of the binary's %d modules: %s", file, len(missing), len(bi.Deps), strings.Join(missing, ", "))
	}
	return len(bi.Deps), nil
}

func keys[M ~map[K]V, K comparable, V any](m M) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
