package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/gatehouse-dev/gatehouse/services/authn"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/keydir"
)

// SigningKeyDir holds the Auth service's keys from JWT_SIGNING_KEYS_DIR:
// the private keys it signs with, and the public halves of every key (those
// of keys it no longer signs with, too) for verifying its own tokens and for
// the JWKS. It follows the directory as package authn's DirKeySet does; the
// private keys live here, in the only service that signs, and never in the
// public verifier.
type SigningKeyDir struct {
	w *keydir.Watcher[signingState]
}

var (
	_ authn.KeySet = (*SigningKeyDir)(nil)
	_ SigningKeys  = (*SigningKeyDir)(nil)
)

type signingState struct {
	keys    map[string]authn.Key
	signers map[string]crypto.Signer
	files   []keydir.File // sorted by kid, for comparing two loads
}

// OpenSigningKeyDir loads dir (ActiveKeyFile is not a key) and keeps
// watching it until ctx is done or Close is called. A directory with no
// private key is an error: the service could sign nothing.
func OpenSigningKeyDir(ctx context.Context, dir string, logger *slog.Logger) (*SigningKeyDir, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("key_dir", dir)
	load := func() (signingState, error) {
		files, err := keydir.Read(dir, map[string]bool{ActiveKeyFile: true}, logger)
		if err != nil {
			return signingState{}, err
		}
		st := signingState{keys: map[string]authn.Key{}, signers: map[string]crypto.Signer{}, files: files}
		for _, f := range files {
			k, err := authn.NewKey(f.Kid, f.Public)
			if err != nil {
				return signingState{}, fmt.Errorf("kid %q: %w", f.Kid, err)
			}
			st.keys[f.Kid] = k
			if f.Private != nil {
				st.signers[f.Kid] = f.Private
			}
		}
		return st, nil
	}
	w, err := keydir.Watch(ctx, keydir.Config[signingState]{
		Dir: dir, Logger: logger, Load: load, Same: sameSigningState,
		Changed: func(old, st signingState) {
			logger.Info("signing keys reloaded", "kids", kids(st.files), "signers", signerIDs(st), "previous_kids", kids(old.files))
		},
	})
	if err != nil {
		if errors.Is(err, keydir.ErrNoKeyFiles) {
			err = fmt.Errorf("%w: %w", authn.ErrNoKeyFiles, err)
		}
		return nil, fmt.Errorf("loading keys from %s: %w", dir, err)
	}
	return &SigningKeyDir{w: w}, nil
}

func sameSigningState(a, b signingState) bool {
	return slices.EqualFunc(a.files, b.files, func(x, y keydir.File) bool {
		eq, ok := x.Public.(interface{ Equal(crypto.PublicKey) bool })
		return x.Kid == y.Kid && ok && eq.Equal(y.Public) && (x.Private == nil) == (y.Private == nil)
	})
}

func kids(files []keydir.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Kid
	}
	return out
}

func signerIDs(st signingState) []string {
	var ids []string
	for _, f := range st.files {
		if f.Private != nil {
			ids = append(ids, f.Kid)
		}
	}
	return ids
}

func (d *SigningKeyDir) state() signingState {
	st, _ := d.w.Current()
	return st
}

// Signer returns the key with kid and its private half, if its file held a
// private key.
func (d *SigningKeyDir) Signer(kid string) (authn.Key, crypto.Signer, bool) {
	st := d.state()
	signer, ok := st.signers[kid]
	if !ok {
		return authn.Key{}, nil, false
	}
	return st.keys[kid], signer, true
}

// SignerIDs lists, sorted, the kids that have a private key.
func (d *SigningKeyDir) SignerIDs() []string { return signerIDs(d.state()) }

// Lookup implements authn.KeySet.
func (d *SigningKeyDir) Lookup(_ context.Context, kid string) (authn.Key, error) {
	if k, ok := d.state().keys[kid]; ok {
		return k, nil
	}
	return authn.Key{}, authn.ErrUnknownKey
}

// Ready implements authn.KeySet: OpenSigningKeyDir fails rather than
// returning an empty set.
func (d *SigningKeyDir) Ready() bool { return true }

// Keys implements authn.KeySet: the public halves, sorted by kid.
func (d *SigningKeyDir) Keys() []authn.Key {
	st := d.state()
	out := make([]authn.Key, 0, len(st.files))
	for _, f := range st.files {
		out = append(out, st.keys[f.Kid])
	}
	return out
}

// Generation implements authn.KeySet.
func (d *SigningKeyDir) Generation() uint64 {
	_, gen := d.w.Current()
	return gen
}

// Reload re-reads the directory now; on error the previous keys stay.
func (d *SigningKeyDir) Reload() error { return d.w.Reload() }

// Close stops watching the directory; the keys loaded last stay usable.
func (d *SigningKeyDir) Close() error { return d.w.Close() }
