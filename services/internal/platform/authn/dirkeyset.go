package authn

import (
	"context"
	"crypto"
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
	maxKeyFileSize = 64 << 10 // a PEM key or short chain is a few KiB
	maxDirKeys     = 100
)

// DefaultRescanInterval is how often a DirKeySet re-reads its directory even
// without a filesystem event. fsnotify sees Kubernetes' symlink swap in the
// common case, but inotify events can be dropped (queue overflow) or missed
// (the directory itself replaced), and a rescan is cheap.
const DefaultRescanInterval = 30 * time.Second

// reloadDebounce coalesces the burst of events one Secret update produces
// (new ..timestamp dir, ..data_tmp symlink, rename, old dir removal) into
// one reload.
const reloadDebounce = 100 * time.Millisecond

// DirKeySet holds the public keys found in a directory of PEM files, kept in
// step with the directory while the process runs. This is how keys rotate
// with zero downtime: add the new key's file to the Secret, wait for every
// pod to pick it up, then start signing with it.
//
// Layout: each non-hidden regular file (or symlink to one) is one key and
// its name without the extension is the kid: "2026-01.pem" → kid "2026-01".
// Names starting with "." are skipped, which covers Kubernetes' "..data"
// and "..2026_11_21_..." entries; subdirectories are skipped. Because
// os.Stat follows symlinks, the Kubernetes layout (dir/<name> → ..data/<name>,
// ..data → ..<timestamp>) reads as plain files.
//
// A reload is all or nothing: if any file fails to parse, two files claim
// one kid, or no key would be left, the previous set stays in force and the
// failure is logged. Silently dropping a key because of one bad file would
// turn a typo into an outage. A file that disappears (including a dangling
// symlink mid-swap) simply removes its key.
type DirKeySet struct {
	dir    string
	ignore map[string]bool
	logger *slog.Logger
	state  atomic.Pointer[keyState]

	reloadMu sync.Mutex // serialises reloads; the generation counter relies on it
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
}

// keyState is an immutable snapshot, swapped atomically so lookups never
// take a lock.
type keyState struct {
	keys    map[string]Key
	signers map[string]crypto.Signer // kids whose file held a private key
	gen     uint64
}

var _ KeySet = (*DirKeySet)(nil)

type dirConfig struct {
	rescan time.Duration
	ignore map[string]bool
}

// DirOption configures NewDirKeySet.
type DirOption func(*dirConfig)

// WithRescanInterval sets the periodic rescan (default
// DefaultRescanInterval). Values <= 0 keep the default.
func WithRescanInterval(d time.Duration) DirOption {
	return func(c *dirConfig) {
		if d > 0 {
			c.rescan = d
		}
	}
}

// WithIgnoredFiles skips the named files (exact names) when loading, so a
// directory may also carry non-key files such as the Auth service's
// active-kid.
func WithIgnoredFiles(names ...string) DirOption {
	return func(c *dirConfig) {
		for _, n := range names {
			c.ignore[n] = true
		}
	}
}

// NewDirKeySet loads every key in dir and keeps watching it until ctx is
// done or Close is called. Unlike later reloads, the first load must
// succeed: a service that starts without keys could not authenticate anyone
// and should fail its startup loudly instead.
func NewDirKeySet(ctx context.Context, dir string, logger *slog.Logger, opts ...DirOption) (*DirKeySet, error) {
	cfg := dirConfig{rescan: DefaultRescanInterval, ignore: map[string]bool{}}
	for _, o := range opts {
		o(&cfg)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &DirKeySet{dir: dir, logger: logger.With("key_dir", dir), ignore: cfg.ignore}
	keys, signers, err := loadKeyDir(dir, s.ignore, s.logger)
	if err != nil {
		return nil, fmt.Errorf("authn: loading keys from %s: %w", dir, err)
	}
	s.state.Store(&keyState{keys: keys, signers: signers, gen: 1})
	s.logger.Info("verification keys loaded", "kids", keyIDs(keys))

	watcher, err := fsnotify.NewWatcher()
	if err == nil {
		if err = watcher.Add(dir); err != nil {
			_ = watcher.Close()
		}
	}
	if err != nil {
		// Typically the inotify instance limit. Keys still rotate, just
		// only as fast as the rescan.
		s.logger.Warn("cannot watch key directory; relying on periodic rescan", "error", err, "rescan", cfg.rescan)
		watcher = nil
	}

	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go s.watch(ctx, watcher, cfg.rescan)
	return s, nil
}

func (s *DirKeySet) watch(ctx context.Context, w *fsnotify.Watcher, rescan time.Duration) {
	defer s.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer func() { _ = w.Close() }()
		events, errs = w.Events, w.Errors
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
			s.logger.Warn("key directory watch error; will rescan", "error", err)
			debounce.Reset(reloadDebounce)
		case <-debounce.C:
			_ = s.Reload()
		case <-ticker.C:
			_ = s.Reload()
		}
	}
}

// Reload re-reads the directory now. The watcher calls it; it is exported
// for a SIGHUP handler or an admin endpoint. On error the previous keys stay
// in force (and the error is also logged).
func (s *DirKeySet) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	keys, signers, err := loadKeyDir(s.dir, s.ignore, s.logger)
	if err != nil {
		s.logger.Error("key reload failed; keeping previous keys", "error", err)
		return fmt.Errorf("authn: reloading keys from %s: %w", s.dir, err)
	}
	old := s.state.Load()
	if sameKeys(old.keys, keys) && slices.Equal(signerIDs(old.signers), signerIDs(signers)) {
		return nil
	}
	s.state.Store(&keyState{keys: keys, signers: signers, gen: old.gen + 1})
	s.logger.Info("verification keys reloaded", "kids", keyIDs(keys), "previous_kids", keyIDs(old.keys))
	return nil
}

// Close stops watching the directory and waits for the watcher to exit.
// The last loaded keys remain usable.
func (s *DirKeySet) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// Lookup implements KeySet.
func (s *DirKeySet) Lookup(_ context.Context, kid string) (Key, error) {
	if k, ok := s.state.Load().keys[kid]; ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// Ready implements KeySet. Always true: NewDirKeySet fails rather than
// returning an empty set.
func (s *DirKeySet) Ready() bool { return true }

// Keys implements KeySet.
func (s *DirKeySet) Keys() []Key { return sortedKeys(s.state.Load().keys) }

// Generation implements KeySet.
func (s *DirKeySet) Generation() uint64 { return s.state.Load().gen }

// Signer returns the key with kid and its private half, if the key's file
// held a private key. Only the Auth service, which mounts private keys,
// has any.
func (s *DirKeySet) Signer(kid string) (Key, crypto.Signer, bool) {
	st := s.state.Load()
	signer, ok := st.signers[kid]
	if !ok {
		return Key{}, nil, false
	}
	return st.keys[kid], signer, true
}

// SignerIDs lists, sorted, the kids that have a private key.
func (s *DirKeySet) SignerIDs() []string { return signerIDs(s.state.Load().signers) }

func signerIDs(m map[string]crypto.Signer) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// loadKeyDir reads every key file in dir (see DirKeySet for the rules).
func loadKeyDir(dir string, ignore map[string]bool, logger *slog.Logger) (map[string]Key, map[string]crypto.Signer, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	keys := make(map[string]Key)
	signers := make(map[string]crypto.Signer)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || ignore[name] {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // follows the ..data symlinks
		if errors.Is(err, fs.ErrNotExist) {
			// Dangling symlink: its target left in a ..data swap that is
			// still in progress. The key is gone; a later event reloads.
			logger.Debug("skipping dangling key file", "file", name)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if fi.IsDir() {
			continue
		}
		if !fi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("%s: not a regular file", name)
		}
		kid := strings.TrimSuffix(name, filepath.Ext(name))
		key, signer, err := loadKeyFile(path, kid)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed between ReadDir and Open
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if signer != nil {
			signers[kid] = signer
		}
		if prev, dup := keys[kid]; dup {
			// tls.crt and tls.key of one key pair are fine; two different
			// keys under one kid are not.
			if !sameKey(prev, key) {
				return nil, nil, fmt.Errorf("%s: another file already holds a different key with kid %q", name, kid)
			}
			continue
		}
		if len(keys) == maxDirKeys {
			return nil, nil, fmt.Errorf("more than %d keys", maxDirKeys)
		}
		keys[kid] = key
	}
	if len(keys) == 0 {
		// An empty directory is far more likely a mount glitch than a
		// deliberate "reject every token".
		return nil, nil, ErrNoKeyFiles
	}
	return keys, signers, nil
}

// loadKeyFile reads one key; the signer is non-nil when the file held a
// private key.
func loadKeyFile(path, kid string) (Key, crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, nil, err
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on close
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Key{}, nil, err
	}
	if len(data) > maxKeyFileSize {
		return Key{}, nil, fmt.Errorf("larger than %d bytes", maxKeyFileSize)
	}
	raw, err := parsePEMKey(data)
	if err != nil {
		return Key{}, nil, err
	}
	key, err := NewKey(kid, raw)
	if err != nil {
		return Key{}, nil, err
	}
	if key.Algorithm == AlgHS256 {
		return Key{}, nil, errors.New("HS256 secrets are not loaded from key directories")
	}
	signer, _ := raw.(crypto.Signer) // every supported private key type is one
	return key, signer, nil
}
