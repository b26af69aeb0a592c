package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/keydir"
)

// DefaultRescanInterval is how often a DirKeySet re-reads its directory even
// without a filesystem event. fsnotify sees Kubernetes' symlink swap in the
// common case, but inotify events can be dropped or missed, and a rescan is
// cheap.
const DefaultRescanInterval = keydir.DefaultRescanInterval

// DirKeySet holds the public keys found in a directory of PEM files, kept in
// step with the directory while the process runs. This is how keys rotate
// with zero downtime: add the new key's file to the Secret, wait for every
// pod to pick it up, then start signing with it.
//
// Layout: each non-hidden regular file (or symlink to one) is one key and
// its name without the extension is the kid: "2026-01.pem" → kid "2026-01".
// A file may hold a public key, a certificate or a private key; of a private
// key only the public half is kept (and a warning logged: a verifier should
// be given public keys only). Names starting with "." are skipped, which
// covers Kubernetes' "..data" and "..2026_11_21_..." entries.
//
// A reload is all or nothing: if any file fails to parse, two files claim
// one kid, or no key would be left, the previous set stays in force and the
// failure is logged. A file that disappears simply removes its key.
type DirKeySet struct {
	w *keydir.Watcher[map[string]Key]
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
	return func(c *dirConfig) { c.rescan = d }
}

// WithIgnoredFiles skips the named files (exact names) when loading, so a
// directory may also carry non-key files.
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
	cfg := dirConfig{ignore: map[string]bool{}}
	for _, o := range opts {
		o(&cfg)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("key_dir", dir)
	warned := map[string]bool{}
	load := func() (map[string]Key, error) {
		files, err := keydir.Read(dir, cfg.ignore, logger)
		if err != nil {
			return nil, err
		}
		keys := make(map[string]Key, len(files))
		for _, f := range files {
			if f.Private != nil && !warned[f.Kid] {
				warned[f.Kid] = true // load runs under the watcher's lock
				logger.Warn("key file holds a private key; only its public half is used. Give verifiers public keys only", "kid", f.Kid)
			}
			k, err := NewKey(f.Kid, f.Public)
			if err != nil {
				return nil, fmt.Errorf("kid %q: %w", f.Kid, err)
			}
			keys[f.Kid] = k
		}
		return keys, nil
	}
	w, err := keydir.Watch(ctx, keydir.Config[map[string]Key]{
		Dir: dir, Logger: logger, Rescan: cfg.rescan, Load: load, Same: sameKeys,
		Changed: func(old, keys map[string]Key) {
			logger.Info("verification keys reloaded", "kids", keyIDs(keys), "previous_kids", keyIDs(old))
		},
	})
	if err != nil {
		if errors.Is(err, keydir.ErrNoKeyFiles) {
			err = fmt.Errorf("%w: %w", ErrNoKeyFiles, err)
		}
		return nil, fmt.Errorf("authn: loading keys from %s: %w", dir, err)
	}
	keys, _ := w.Current()
	logger.Info("verification keys loaded", "kids", keyIDs(keys))
	return &DirKeySet{w: w}, nil
}

// Reload re-reads the directory now. The watcher calls it; it is exported
// for a SIGHUP handler or an admin endpoint. On error the previous keys stay
// in force (and the error is also logged).
func (s *DirKeySet) Reload() error {
	if err := s.w.Reload(); err != nil {
		return fmt.Errorf("authn: %w", err)
	}
	return nil
}

// Close stops watching the directory and waits for the watcher to exit.
// The last loaded keys remain usable.
func (s *DirKeySet) Close() error { return s.w.Close() }

// Lookup implements KeySet.
func (s *DirKeySet) Lookup(_ context.Context, kid string) (Key, error) {
	keys, _ := s.w.Current()
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return Key{}, ErrUnknownKey
}

// Ready implements KeySet. Always true: NewDirKeySet fails rather than
// returning an empty set.
func (s *DirKeySet) Ready() bool { return true }

// Keys implements KeySet.
func (s *DirKeySet) Keys() []Key {
	keys, _ := s.w.Current()
	return sortedKeys(keys)
}

// Generation implements KeySet.
func (s *DirKeySet) Generation() uint64 {
	_, gen := s.w.Current()
	return gen
}
