package seeding

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
)

// Options say what to write.
type Options struct {
	// Users to add, each with PasswordHash; Batch rows per transaction.
	Users        int
	PasswordHash string
	Batch        int
	// Families to add (one current token each), spread over the users
	// round-robin. The tokens of TokenCount families picked at random go
	// to Tokens, one per line, in the order picked: spread over the whole
	// table, not its oldest rows (the first pages a time-ordered key
	// fills), whose pages a measurement would find warm.
	Families   int
	Tokens     io.Writer
	TokenCount int
}

// Users inserts o.Users users into a User service database and returns
// their ids and emails, in insertion order.
func Users(ctx context.Context, db *database.DB, o Options) (ids, emails []string, err error) {
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids, emails = make([]string, o.Users), make([]string, o.Users)
	cols := []string{"id", "email", "display_name", "roles", "password_hash", "create_time", "update_time", "version", "session_version"}
	err = inBatches(ctx, db, "users", cols, o.Users, batch(o), func(i int) []any {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		emails[i] = fmt.Sprintf("seed-%s-%d@example.com", run, i)
		return []any{ids[i], emails[i], fmt.Sprintf("Seeded %d", i), "[]", o.PasswordHash, now, now, int64(1), int64(0)}
	})
	return ids, emails, err
}

func batch(o Options) int {
	if o.Batch <= 0 {
		return 10000
	}
	return o.Batch
}

// Families inserts o.Families refresh families of userIDs into an Auth
// service database, each with one current token, and writes the tokens
// of o.TokenCount families picked at random to o.Tokens.
func Families(ctx context.Context, db *database.DB, o Options, userIDs []string) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	famIDs := make([]string, o.Families)
	fcols := []string{"id", "user_id", "roles", "created_at", "expires_at", "session_version", "client_id"}
	err := inBatches(ctx, db, "refresh_families", fcols, o.Families, batch(o), func(i int) []any {
		famIDs[i] = uuid.Must(uuid.NewV7()).String()
		return []any{famIDs[i], userIDs[i%len(userIDs)], "[]", now, now.Add(30 * 24 * time.Hour), int64(0), "gatehouse"}
	})
	if err != nil {
		return err
	}
	w := o.Tokens
	if w == nil {
		w = io.Discard
	}
	picked := pick(o.Families, o.TokenCount)
	written := make([]string, len(picked))
	tcols := []string{"hash", "family_id", "issued_at", "idle_expires_at"}
	err = inBatches(ctx, db, "refresh_tokens", tcols, o.Families, batch(o), func(i int) []any {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		token := base64.RawURLEncoding.EncodeToString(b)
		if at, ok := picked[i]; ok {
			written[at] = token
		}
		sum := sha256.Sum256([]byte(token))
		return []any{hex.EncodeToString(sum[:]), famIDs[i], now, now.Add(30 * 24 * time.Hour)}
	})
	if err != nil {
		return err
	}
	for _, token := range written {
		if _, err := fmt.Fprintln(w, token); err != nil {
			return err
		}
	}
	return nil
}

// pick chooses k of the indexes 0 to n-1 (all of them if k >= n) at
// random and maps each to its place in the order picked. Seeded, so two
// runs of one size pick the same rows.
func pick(n, k int) map[int]int {
	rng := mrand.New(mrand.NewPCG(uint64(n), uint64(k))) //nolint:gosec // reproducible picks, not a secret
	k = max(0, min(k, n))
	picked := make(map[int]int, k)
	if 2*k > n {
		for at, i := range rng.Perm(n)[:k] {
			picked[i] = at
		}
		return picked
	}
	for len(picked) < k {
		i := rng.IntN(n)
		if _, dup := picked[i]; !dup {
			picked[i] = len(picked)
		}
	}
	return picked
}

// inBatches inserts n rows of table, row(i) giving the i-th, batch rows per
// transaction: COPY on PostgreSQL, a prepared INSERT on SQLite.
func inBatches(ctx context.Context, db *database.DB, table string, cols []string, n, batch int, row func(i int) []any) error {
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		var err error
		if db.Dialect() == database.DialectPostgres {
			err = copyRows(ctx, db.SQL(), table, cols, lo, hi, row)
		} else {
			err = insertRows(ctx, db.SQL(), table, cols, lo, hi, row)
		}
		if err != nil {
			return fmt.Errorf("%s rows %d-%d: %w", table, lo, hi, err)
		}
	}
	return nil
}

func copyRows(ctx context.Context, pool *sql.DB, table string, cols []string, lo, hi int, row func(int) []any) error {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("not a pgx connection: %T", dc)
		}
		rows := make([][]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			rows = append(rows, row(i))
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		return err
	})
}

func insertRows(ctx context.Context, pool *sql.DB, table string, cols []string, lo, hi int, row func(int) []any) error {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	// table and cols are this package's constants, never input.
	q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + placeholders(len(cols)) + ")" //nolint:gosec // constants, see above
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	for i := lo; i < hi; i++ {
		if _, err := st.ExecContext(ctx, row(i)...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func placeholders(n int) string {
	out := ""
	for i := 1; i <= n; i++ {
		if i > 1 {
			out += ", "
		}
		out += fmt.Sprintf("$%d", i)
	}
	return out
}
