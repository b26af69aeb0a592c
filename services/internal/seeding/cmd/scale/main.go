package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	authstore "github.com/gatehouse-dev/gatehouse/services/internal/auth/store"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/seeding"
	userstore "github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type size struct{ users, families int }

func (s size) String() string { return short(s.users) + " users / " + short(s.families) + " families" }

func short(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pg := fs.String("postgres", "", "PostgreSQL server URL whose role may CREATE DATABASE (empty: SQLite only)")
	sizesFlag := fs.String("sizes", "1000:10000,100000:1000000", "USERS:FAMILIES,... to measure, smallest first (the ratios are to the first)")
	samples := fs.Int("samples", 2000, "calls timed per operation and size")
	work := fs.String("dir", "", "directory for the SQLite files (default: a temporary one, removed)")
	noSQLite := fs.Bool("no-sqlite", false, "measure PostgreSQL only (with -postgres)")
	keep := fs.Bool("keep", false, "keep the seeded databases (PostgreSQL scale_N_M_user/_auth, SQLite files in -dir) to examine them, e.g. with EXPLAIN")
	sqliteParams := fs.String("sqlite-params", "", "query parameters added to the SQLite URLs, to try a setting (e.g. _pragma=cache_size(-8192))")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var sizes []size
	for _, f := range strings.Split(*sizesFlag, ",") {
		u, m, ok := strings.Cut(f, ":")
		nu, err1 := strconv.Atoi(u)
		nm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || nu <= 0 || nm < nu {
			return fmt.Errorf("-sizes: %q is not USERS:FAMILIES with FAMILIES >= USERS > 0", f)
		}
		sizes = append(sizes, size{nu, nm})
	}
	if len(sizes) == 0 || (*noSQLite && *pg == "") {
		return errors.New("nothing to measure: -no-sqlite needs -postgres")
	}
	if *keep && *work == "" && !*noSQLite {
		return errors.New("-keep needs -dir for the SQLite files")
	}
	if *samples < 100 {
		return errors.New("-samples must be at least 100")
	}
	dir := *work
	if dir == "" {
		d, err := os.MkdirTemp("", "gatehouse-scale")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(d) }()
		dir = d
	}
	hash, err := argon2id.CreateHash("seeded users share this password", argon2id.DefaultParams)
	if err != nil {
		return err
	}
	var dialects []string
	if !*noSQLite {
		dialects = append(dialects, "sqlite")
	}
	if *pg != "" {
		dialects = append(dialects, "postgres")
	}
	for _, dialect := range dialects {
		var results []result
		for _, sz := range sizes {
			fmt.Fprintf(stderr, "scale: %s, %s: seeding\n", dialect, sz)
			userURL, authURL, drop, err := databases(ctx, dialect, dir, *pg, sz, *sqliteParams)
			if err != nil {
				return err
			}
			r, err := measure(ctx, userURL, authURL, hash, sz, *samples, stderr)
			if !*keep {
				drop()
			}
			if err != nil {
				return fmt.Errorf("%s, %s: %w", dialect, sz, err)
			}
			results = append(results, r)
		}
		report(stdout, dialect, results)
	}
	return nil
}

// databases creates an empty pair of databases for one size.
func databases(ctx context.Context, dialect, dir, server string, sz size, sqliteParams string) (userURL, authURL string, drop func(), err error) {
	name := fmt.Sprintf("scale_%d_%d", sz.users, sz.families)
	if dialect == "sqlite" {
		u, a := filepath.Join(dir, name+"_user.db"), filepath.Join(dir, name+"_auth.db")
		drop = func() {
			for _, f := range []string{u, a} {
				for _, suffix := range []string{"", "-wal", "-shm"} {
					_ = os.Remove(f + suffix)
				}
			}
		}
		drop() // what an interrupted run left
		q := ""
		if sqliteParams != "" {
			q = "?" + sqliteParams
		}
		return "sqlite://" + u + q, "sqlite://" + a + q, drop, nil
	}
	admin, err := database.Open(ctx, server, nil)
	if err != nil {
		return "", "", nil, err
	}
	var urls []string
	for _, db := range []string{name + "_user", name + "_auth"} {
		if _, err := admin.SQL().ExecContext(ctx, `DROP DATABASE IF EXISTS `+db); err != nil {
			return "", "", nil, err
		}
		if _, err := admin.SQL().ExecContext(ctx, `CREATE DATABASE `+db); err != nil {
			return "", "", nil, err
		}
		u, _ := url.Parse(server)
		u.Path = "/" + db
		urls = append(urls, u.String())
	}
	drop = func() {
		for _, db := range []string{name + "_user", name + "_auth"} {
			_, _ = admin.SQL().ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`)
		}
		_ = admin.Close()
	}
	return urls[0], urls[1], drop, nil
}

type op struct {
	name string
	d    []time.Duration
}

type result struct {
	size                     size
	ops                      []op
	seedTime                 time.Duration
	bytesPerUser, bytesPerFm float64
}

func measure(ctx context.Context, userURL, authURL, hash string, sz size, samples int, log io.Writer) (result, error) {
	res := result{size: sz}
	udb, err := database.Open(ctx, userURL, userstore.Migrations)
	if err != nil {
		return res, err
	}
	defer func() { _ = udb.Close() }()
	adb, err := database.Open(ctx, authURL, authstore.Migrations)
	if err != nil {
		return res, err
	}
	defer func() { _ = adb.Close() }()
	var tokens strings.Builder
	start := time.Now()
	o := seeding.Options{Users: sz.users, PasswordHash: hash, Families: sz.families, Tokens: &tokens, TokenCount: samples}
	ids, emails, err := seeding.Users(ctx, udb, o)
	if err != nil {
		return res, err
	}
	if err := seeding.Families(ctx, adb, o, ids); err != nil {
		return res, err
	}
	res.seedTime = time.Since(start)
	fmt.Fprintf(log, "scale:   seeded in %s; analysing\n", res.seedTime.Round(time.Millisecond))
	for _, db := range []*database.DB{udb, adb} {
		q := "ANALYZE"
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			return res, err
		}
	}
	if res.bytesPerUser, err = sizeOf(ctx, udb, userURL, []string{"users"}, sz.users); err != nil {
		return res, err
	}
	if res.bytesPerFm, err = sizeOf(ctx, adb, authURL, []string{"refresh_families", "refresh_tokens"}, sz.families); err != nil {
		return res, err
	}

	users := userstore.New(udb)
	refresh := authstore.New(adb)
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	deep := sorted[len(sorted)*9/10]
	// Seeded, so two runs pick the same rows; nothing here is a secret.
	rng := rand.New(rand.NewPCG(uint64(sz.users), uint64(sz.families))) //nolint:gosec // reproducible picks, not a secret
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	toks := strings.Fields(tokens.String())
	now := time.Now()
	timed := func(name string, n int, f func(i int) error) error {
		o := op{name: name}
		for i := range n {
			t0 := time.Now()
			if err := f(i); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			o.d = append(o.d, time.Since(t0))
		}
		res.ops = append(res.ops, o)
		return nil
	}
	steps := []struct {
		name string
		n    int
		f    func(i int) error
	}{
		{"GetUser (store Get)", samples, func(int) error { _, err := users.Get(ctx, pick(ids)); return err }},
		{"Login lookup (GetByEmail)", samples, func(int) error { _, err := users.GetByEmail(ctx, pick(emails)); return err }},
		{"ListUsers, first page of 50", samples / 4, func(int) error { _, err := users.List(ctx, "", 50); return err }},
		{"ListUsers, page 90% deep", samples / 4, func(int) error { _, err := users.List(ctx, deep, 50); return err }},
		{"RefreshToken (Lookup + Rotate)", min(samples, len(toks)), func(i int) error {
			sum := sha256.Sum256([]byte(toks[i]))
			h := hex.EncodeToString(sum[:])
			if _, _, err := refresh.Lookup(ctx, h); err != nil {
				return err
			}
			next := sha256.Sum256([]byte(toks[i] + "next"))
			_, err := refresh.Rotate(ctx, h, auth.RefreshToken{Hash: hex.EncodeToString(next[:]), IssuedAt: now, IdleExpiresAt: now.Add(time.Hour)}, now, 0)
			return err
		}},
		{"RevokeAllSessions (one user's families)", samples / 4, func(int) error {
			_, err := refresh.RevokeUserFamilies(ctx, pick(ids), 1<<40, now)
			return err
		}},
		{"background purge, nothing to purge", 20, func(int) error { _, err := refresh.PurgeExpired(ctx, now, time.Hour); return err }},
		{"start: Open + migrations (user database)", 5, func(int) error {
			db, err := database.Open(ctx, userURL, userstore.Migrations)
			if err == nil {
				err = db.Close()
			}
			return err
		}},
	}
	for _, s := range steps {
		if err := timed(s.name, s.n, s.f); err != nil {
			return res, err
		}
	}
	return res, nil
}

// sizeOf is the bytes the tables (indexes included) take, per row.
func sizeOf(ctx context.Context, db *database.DB, dbURL string, tables []string, rows int) (float64, error) {
	var total int64
	if db.Dialect() == database.DialectPostgres {
		for _, t := range tables {
			var n int64
			if err := db.SQL().QueryRowContext(ctx, `SELECT pg_total_relation_size($1::regclass)`, t).Scan(&n); err != nil {
				return 0, err
			}
			total += n
		}
	} else {
		// The whole file after a checkpoint: SQLite keeps tables and
		// indexes in one file.
		if _, err := db.SQL().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return 0, err
		}
		path, _, _ := strings.Cut(strings.TrimPrefix(dbURL, "sqlite://"), "?")
		st, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		total = st.Size()
	}
	return float64(total) / float64(rows), nil
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func report(w io.Writer, dialect string, rs []result) {
	fmt.Fprintf(w, "\n%s: p50 / p99 of one call, ops/s of one caller (1 / mean), and the p50 as a ratio to the smallest size\n\n", dialect)
	fmt.Fprint(w, "| Operation |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s |", r.size)
	}
	fmt.Fprint(w, "\n|---|")
	for range rs {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for i := range rs[0].ops {
		fmt.Fprintf(w, "| %s |", rs[0].ops[i].name)
		base := pct(rs[0].ops[i].d, 0.5)
		for _, r := range rs {
			o := r.ops[i]
			var sum time.Duration
			for _, d := range o.d {
				sum += d
			}
			p50 := pct(o.d, 0.5)
			fmt.Fprintf(w, " %s / %s, %.0f/s, %.2f× |", ms(p50), ms(pct(o.d, 0.99)),
				float64(len(o.d))/sum.Seconds(), float64(p50)/float64(base))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| bytes per user / per family (tables and indexes) |")
	for _, r := range rs {
		fmt.Fprintf(w, " %.0f / %.0f |", r.bytesPerUser, r.bytesPerFm)
	}
	fmt.Fprint(w, "\n| seeding time |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s |", r.seedTime.Round(100*time.Millisecond))
	}
	fmt.Fprintln(w)
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + " ms" }
