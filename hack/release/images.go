package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pushed is what `release images` writes for the release script: where the
// index went and the digest of every platform's image in it.
type pushed struct {
	Service    string            `json:"service"`
	Repository string            `json:"repository"`
	Tag        string            `json:"tag"`
	Index      string            `json:"index"`
	Platforms  map[string]string `json:"platforms"`
}

// runImages turns the image the Dockerfile built for this machine's
// architecture into one image per platform and pushes them as one OCI
// index. The Dockerfile stays the one definition of the image (labels,
// user, ports, entrypoint, files); only the service binary differs per
// platform, and Go cross-compiles it, so no emulation is involved.
func runImages(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("images", stderr)
	registry := fs.String("registry", "", "where to push: REGISTRY[/PATH]; images go to <registry>/gatehouse-<service>")
	version := fs.String("version", "", "the release version, the tag pushed (vX.Y.Z)")
	service := fs.String("service", "", "user or auth")
	base := fs.String("base", "", "`docker save` tarball of the image the Dockerfile built")
	out := fs.String("out", "", "write what was pushed here as JSON")
	bins := binaries{}
	fs.Var(bins, "binary", "OS/ARCH=FILE: the service binary for that platform (repeat per platform)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *registry == "" || *version == "" || *service == "" || *base == "" || len(bins) == 0 {
		return errors.New("images: -registry, -version, -service, -base and at least one -binary are required")
	}
	repo, err := name.NewRepository(strings.TrimSuffix(*registry, "/") + "/gatehouse-" + *service)
	if err != nil {
		return fmt.Errorf("images: registry %q: %w", *registry, err)
	}
	tag := repo.Tag(*version)

	src, err := tarball.ImageFromPath(*base, nil)
	if err != nil {
		return fmt.Errorf("images: reading %s: %w", *base, err)
	}
	srcCfg, err := src.ConfigFile()
	if err != nil {
		return fmt.Errorf("images: %s: config: %w", *base, err)
	}
	if got := srcCfg.Config.Labels["org.opencontainers.image.version"]; got != *version {
		return fmt.Errorf("images: %s is labelled version %q, not %q: build it with VERSION=%s", *base, got, *version, *version)
	}
	fsys, err := flatten(src)
	if err != nil {
		return fmt.Errorf("images: %s: %w", *base, err)
	}
	binPath := "/" + *service
	if !slices.ContainsFunc(fsys, func(e entry) bool { return e.hdr.Name == binPath }) {
		return fmt.Errorf("images: %s holds no %s", *base, binPath)
	}

	platforms := make([]string, 0, len(bins))
	for p := range bins {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)

	opt, cancel := withTimeout()
	defer cancel()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	res := pushed{Service: *service, Repository: repo.String(), Tag: *version, Platforms: map[string]string{}}
	for _, p := range platforms {
		plat, _ := parsePlatform(p)
		binary, err := os.ReadFile(bins[p])
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		if err := checkBinary(binary, plat); err != nil {
			return fmt.Errorf("images: %s: %w", bins[p], err)
		}
		img, err := platformImage(srcCfg, fsys, binPath, binary, plat)
		if err != nil {
			return fmt.Errorf("images: %s: %w", p, err)
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		if err := remote.Write(repo.Digest(d.String()), img, opt); err != nil {
			return fmt.Errorf("images: pushing %s for %s: %w", repo, p, err)
		}
		fmt.Fprintf(stderr, "release: pushed %s@%s (%s)\n", repo, d, p)
		res.Platforms[p] = d.String()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plat},
		})
	}
	if err := remote.WriteIndex(tag, idx, opt); err != nil {
		return fmt.Errorf("images: pushing the index %s: %w", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	res.Index = d.String()
	fmt.Fprintf(stdout, "%s@%s\n", tag, d)
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// entry is one file of a flattened image: its header and, for regular
// files, its contents.
type entry struct {
	hdr  *tar.Header
	data []byte
}

// flatten reads an image's file system, every layer applied (whiteouts
// included). Names are made absolute so "user" and "./user" compare equal.
func flatten(img v1.Image) ([]entry, error) {
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	var out []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		h.Name = path.Clean("/" + h.Name)
		var data []byte
		if h.Typeflag == tar.TypeReg {
			if data, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
		out = append(out, entry{hdr: h, data: data})
	}
}

// platformImage is one layer holding fsys with binPath's contents replaced
// by binary, under the source image's config set to platform p. Owners and
// modes are kept; every time is the image's creation label (the release
// sets it to the commit's time), because Docker stamps the build's own
// time on the config and on directories it creates. So the only
// differences between the platforms' images are the binary and the
// architecture, and the same commit and version give the same digests.
func platformImage(srcCfg *v1.ConfigFile, fsys []entry, binPath string, binary []byte, p v1.Platform) (v1.Image, error) {
	created := srcCfg.Created.Time
	if t, err := time.Parse(time.RFC3339, srcCfg.Config.Labels["org.opencontainers.image.created"]); err == nil {
		created = t.UTC()
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range fsys {
		h := *e.hdr
		data := e.data
		if h.Name == binPath {
			data = binary
			h.Size = int64(len(binary))
		}
		h.Name = strings.TrimPrefix(h.Name, "/")
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if h.Name == "/" || h.Name == "" {
			continue
		}
		h.ModTime, h.AccessTime, h.ChangeTime = created, time.Time{}, time.Time{}
		h.Uname, h.Gname = "", ""
		h.PAXRecords = nil
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "gatehouse release: the Dockerfile's image, " + binPath + " built for " + p.String()},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created}
	cfg.Author = srcCfg.Author
	cfg.Config = *srcCfg.Config.DeepCopy()
	// Docker's id of the build's parent step: a local id, new every build.
	cfg.Config.Image = ""
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	return mutate.ConfigFile(img, cfg)
}

// parsePlatform reads OS/ARCH[/VARIANT]; arm64 gets variant v8, as the
// registries' own multi-arch images have it.
func parsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want OS/ARCH", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return p, nil
}
