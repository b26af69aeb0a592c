package keydir

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Limits that keep a misconfigured mount from costing memory or time.
const (
	MaxFileSize = 64 << 10 // a PEM key or short chain is a few KiB
	MaxKeys     = 100
)

// DefaultRescanInterval is how often a Watcher re-reads its directory even
// without a filesystem event. fsnotify sees Kubernetes' symlink swap in the
// common case, but inotify events can be dropped (queue overflow) or missed
// (the directory itself replaced), and a rescan is cheap.
const DefaultRescanInterval = 30 * time.Second

// reloadDebounce coalesces the burst of events one Secret update produces
// (new ..timestamp dir, ..data_tmp symlink, rename, old dir removal) into
// one reload.
const reloadDebounce = 100 * time.Millisecond

// ErrNoKeyFiles means a directory held no key at all, so a service can tell
// its operator how to create one.
var ErrNoKeyFiles = errors.New("no key files found")

// File is one key found in a directory.
type File struct {
	// Kid is the file name without its extension: "2026-01.pem" → "2026-01".
	Kid string
	// Public is the key's public half, whatever the file held.
	Public crypto.PublicKey
	// Private is the private key, nil when the file held only a public key
	// or a certificate.
	Private crypto.Signer
}

// Read returns every key in dir, sorted by kid.
//
// Layout: each non-hidden regular file (or symlink to one) is one key and
// its name without the extension is the kid. Names starting with "." are
// skipped, which covers Kubernetes' "..data" and "..2026_11_21_..."
// entries; so are subdirectories and the names in ignore. Because os.Stat
// follows symlinks, the Kubernetes layout (dir/<name> → ..data/<name>,
// ..data → ..<timestamp>) reads as plain files. A dangling symlink (its
// target removed mid-swap) is skipped: a later event reads the new state.
//
// Two files may share a kid only if they hold the same key (tls.crt and
// tls.key of one pair). An empty directory is ErrNoKeyFiles: far more
// likely a mount glitch than a deliberate "reject every token".
func Read(dir string, ignore map[string]bool, logger *slog.Logger) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byKid := make(map[string]*File)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || ignore[name] {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // follows the ..data symlinks
		if errors.Is(err, fs.ErrNotExist) {
			logger.Debug("skipping dangling key file", "file", name)
			continue
		}
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			continue
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", name)
		}
		f, err := readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed between ReadDir and Open
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		f.Kid = strings.TrimSuffix(name, filepath.Ext(name))
		prev, dup := byKid[f.Kid]
		if !dup {
			if len(byKid) == MaxKeys {
				return nil, fmt.Errorf("more than %d keys", MaxKeys)
			}
			byKid[f.Kid] = &f
			continue
		}
		if !samePublic(prev.Public, f.Public) {
			return nil, fmt.Errorf("%s: another file already holds a different key with kid %q", name, f.Kid)
		}
		if prev.Private == nil {
			prev.Private = f.Private
		}
	}
	if len(byKid) == 0 {
		return nil, ErrNoKeyFiles
	}
	out := make([]File, 0, len(byKid))
	for _, f := range byKid {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Kid, b.Kid) })
	return out, nil
}

func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func readFile(path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on close
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return File{}, err
	}
	if len(data) > MaxFileSize {
		return File{}, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	raw, err := ParsePEM(data)
	if err != nil {
		return File{}, err
	}
	if signer, ok := raw.(crypto.Signer); ok { // every supported private key type is one
		return File{Public: signer.Public(), Private: signer}, nil
	}
	return File{Public: raw}, nil
}

// ParsePEM extracts one key from PEM data. It accepts what a Kubernetes
// Secret is likely to hold: a PKIX "PUBLIC KEY", a "CERTIFICATE" (the
// public key of the first certificate, i.e. the leaf of a chain), or a
// private key ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY").
// "EC PARAMETERS" blocks, as written by `openssl ecparam -genkey`, are
// skipped. The first key-bearing block wins.
func ParsePEM(data []byte) (any, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM key block found")
		}
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "PUBLIC KEY":
			return x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			return x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			return cert.PublicKey, nil
		case "PRIVATE KEY":
			return x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
		}
	}
}

// Watcher keeps the result of a load function current: it runs Load once
// at start, then again on each change to the directory and on every rescan.
// A reload is all or nothing: if Load fails, the previous value stays in
// force and the failure is logged. Silently dropping a key because of one
// bad file would turn a typo into an outage.
type Watcher[T any] struct {
	cfg   Config[T]
	state atomic.Pointer[snapshot[T]]

	reloadMu sync.Mutex // serialises reloads; the generation counter relies on it
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
}

// Config says what a Watcher watches and how it reads it.
type Config[T any] struct {
	Dir    string
	Logger *slog.Logger
	// Rescan is the periodic re-read; <= 0 means DefaultRescanInterval.
	Rescan time.Duration
	// Load reads Dir (typically with Read).
	Load func() (T, error)
	// Same tells a reload that changed nothing, so the generation moves
	// only when the keys do.
	Same func(a, b T) bool
	// Changed, if set, is called after a reload that changed the value.
	Changed func(old, new T)
}

type snapshot[T any] struct {
	v   T
	gen uint64
}

// Watch loads the directory and keeps watching it until ctx is done or
// Close is called. Unlike later reloads, the first load must succeed: a
// service that starts without keys should fail its startup loudly.
func Watch[T any](ctx context.Context, cfg Config[T]) (*Watcher[T], error) {
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescanInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher[T]{cfg: cfg}
	v, err := cfg.Load()
	if err != nil {
		return nil, err
	}
	w.state.Store(&snapshot[T]{v: v, gen: 1})

	fw, err := fsnotify.NewWatcher()
	if err == nil {
		if err = fw.Add(cfg.Dir); err != nil {
			_ = fw.Close()
		}
	}
	if err != nil {
		// Typically the inotify instance limit. Keys still rotate, just
		// only as fast as the rescan.
		cfg.Logger.Warn("cannot watch key directory; relying on periodic rescan", "error", err, "rescan", cfg.Rescan)
		fw = nil
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.wg.Add(1)
	go w.watch(ctx, fw, cfg.Rescan)
	return w, nil
}

// Current returns the last loaded value and its generation (1 after the
// first load, +1 on each change).
func (w *Watcher[T]) Current() (T, uint64) {
	s := w.state.Load()
	return s.v, s.gen
}

func (w *Watcher[T]) watch(ctx context.Context, fw *fsnotify.Watcher, rescan time.Duration) {
	defer w.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw != nil {
		defer func() { _ = fw.Close() }()
		events, errs = fw.Events, fw.Errors
	}
	ticker := time.NewTicker(rescan)
	defer ticker.Stop()
	debounce := time.NewTimer(reloadDebounce)
	debounce.Stop()
	defer debounce.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			debounce.Reset(reloadDebounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.cfg.Logger.Warn("key directory watch error; will rescan", "error", err)
			debounce.Reset(reloadDebounce)
		case <-debounce.C:
			_ = w.Reload()
		case <-ticker.C:
			_ = w.Reload()
		}
	}
}

// Reload re-reads the directory now; the watcher calls it, and it is
// exported for a SIGHUP handler or a test. On error the previous value
// stays in force (and the error is also logged).
func (w *Watcher[T]) Reload() error {
	w.reloadMu.Lock()
	defer w.reloadMu.Unlock()
	v, err := w.cfg.Load()
	if err != nil {
		w.cfg.Logger.Error("key reload failed; keeping previous keys", "error", err)
		return fmt.Errorf("reloading keys from %s: %w", w.cfg.Dir, err)
	}
	old := w.state.Load()
	if w.cfg.Same(old.v, v) {
		return nil
	}
	w.state.Store(&snapshot[T]{v: v, gen: old.gen + 1})
	if w.cfg.Changed != nil {
		w.cfg.Changed(old.v, v)
	}
	return nil
}

// Close stops watching the directory and waits for the watcher to exit.
// The last loaded value remains usable.
func (w *Watcher[T]) Close() error {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
	return nil
}
