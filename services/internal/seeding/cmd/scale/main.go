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
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/services/internal/auth"
	authstore "github.com/gatehouse-dev/gatehouse/services/internal/auth/store"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/seeding"
	"github.com/gatehouse-dev/gatehouse/services/internal/user/password"
	userstore "github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

func main() {
	// Interrupted, the run stops its calls and still removes what it
	// seeded (gigabytes at 1M users) and stops the services it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
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
	rpcOn := fs.Bool("rpc", true, "also time the operations as gRPC calls to the User and Auth services, built from this checkout and run on each size's databases")
	root := fs.String("root", ".", "the module root the services are built from (with -rpc)")
	rounds := fs.Int("rounds", 3, "rounds that alternate between the sizes; the ratios are the median of the rounds' ratios")
	conc := fs.Int("concurrency", 4, "calls in flight for the gRPC timings (Login: at most 2)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *rounds > 20 {
		return errors.New("-rounds must be 1 to 20")
	}
	var sizes []size
	for _, f := range strings.Split(*sizesFlag, ",") {
		u, m, ok := strings.Cut(f, ":")
		nu, err1 := strconv.Atoi(u)
		nm, err2 := strconv.Atoi(m)
		// Each round revokes users of its own, half of them through
		// the store: 2 per round at least.
		if !ok || err1 != nil || err2 != nil || nu < 2*(*rounds) || nm < nu {
			return fmt.Errorf("-sizes: %q is not USERS:FAMILIES with FAMILIES >= USERS >= %d (2 × -rounds)", f, 2*(*rounds))
		}
		if n := len(sizes); n > 0 && (nu < sizes[n-1].users || nm < sizes[n-1].families) {
			return fmt.Errorf("-sizes: %q is smaller than the size before it: smallest first (the ratios are to the first)", f)
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
	if *conc < 1 {
		return errors.New("-concurrency must be at least 1")
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
	// The User service's own parameters, so a Login costs what it costs
	// in production and no login rehashes.
	hasher, err := password.New(password.Params{}, 1)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(ctx, Password)
	if err != nil {
		return err
	}
	var rpc *rpcServices
	if *rpcOn {
		fmt.Fprintf(stderr, "scale: building the services\n")
		if rpc, err = buildServices(*root, filepath.Join(dir, "rpc")); err != nil {
			return err
		}
	}
	var dialects []string
	if !*noSQLite {
		dialects = append(dialects, "sqlite")
	}
	if *pg != "" {
		dialects = append(dialects, "postgres")
	}
	for _, dialect := range dialects {
		if err := measureDialect(ctx, dialect, sizes, dir, *pg, *sqliteParams, hash, *samples, *rounds, rpc, *conc, *keep, stdout, stderr); err != nil {
			return fmt.Errorf("%s: %w", dialect, err)
		}
	}
	return nil
}

// measureDialect seeds every size on one database, then times them all
// in rounds (timeRounds) and reports.
func measureDialect(ctx context.Context, dialect string, sizes []size, dir, pg, sqliteParams, hash string, samples, rounds int, rpc *rpcServices, conc int, keep bool, stdout, stderr io.Writer) error {
	var ps []*prepared
	defer func() {
		for _, p := range ps {
			p.close()
		}
	}()
	for _, sz := range sizes {
		fmt.Fprintf(stderr, "scale: %s, %s: seeding\n", dialect, sz)
		userURL, authURL, drop, err := databases(ctx, dialect, dir, pg, sz, sqliteParams)
		if err != nil {
			return err
		}
		var svc *rpcServices
		if rpc != nil {
			if svc, err = rpc.forSize(sz.String()); err != nil {
				if !keep {
					drop()
				}
				return err
			}
		}
		p, err := prepare(ctx, userURL, authURL, hash, sz, samples, svc, conc, stderr)
		if !keep {
			p.closers = append([]func(){drop}, p.closers...)
		}
		ps = append(ps, p)
		if err != nil {
			return fmt.Errorf("%s: %w", sz, err)
		}
	}
	fmt.Fprintf(stderr, "scale: %s: timing every size in %d rounds\n", dialect, rounds)
	if err := timeRounds(ps, rounds, stderr); err != nil {
		return err
	}
	results := make([]result, len(ps))
	for i, p := range ps {
		results[i] = p.res
	}
	report(stdout, dialect, results, conc, rounds)
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
	dbs := []string{name + "_user", name + "_auth"}
	drop = func() {
		for _, db := range dbs {
			_, _ = admin.SQL().ExecContext(context.Background(), `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`)
		}
		_ = admin.Close()
	}
	var urls []string
	for _, db := range dbs {
		if _, err := admin.SQL().ExecContext(ctx, `DROP DATABASE IF EXISTS `+db); err != nil {
			drop()
			return "", "", nil, err
		}
		if _, err := admin.SQL().ExecContext(ctx, `CREATE DATABASE `+db); err != nil {
			drop()
			return "", "", nil, err
		}
		u, err := url.Parse(server)
		if err != nil {
			drop()
			return "", "", nil, err
		}
		u.Path = "/" + db
		urls = append(urls, u.String())
	}
	return urls[0], urls[1], drop, nil
}

type op struct {
	name     string
	d        []time.Duration // sorted
	wall     time.Duration   // the rounds' wall times, first call's start to last one's end
	roundP50 []time.Duration
	ratios   []float64 // per round, p50 over the first size's p50
}

// step is an operation to time: n calls, conc of them at a time, call i
// being f(i), or timed(i) for a call that times itself (a part of it is
// not the operation).
type step struct {
	name    string
	n, conc int
	f       func(i int) error
	timed   func(i int) (time.Duration, error)
}

func (st step) call(i int) (time.Duration, error) {
	if st.timed != nil {
		return st.timed(i)
	}
	t0 := time.Now()
	err := st.f(i)
	return time.Since(t0), err
}

type result struct {
	size                     size
	ops, rpcOps              []op
	seedTime                 time.Duration
	bytesPerUser, bytesPerFm float64
}

// Password is every seeded user's password.
const Password = "seeded users share this password" //nolint:gosec // a bench fixture, not a credential

// prepared is one size, seeded, with its operations ready to time in
// four groups, in this order: the store's reads, the RPC reads, the
// store's ends and the RPC ends (the revocations end sessions the
// refreshes use, so they come last).
type prepared struct {
	res     result
	groups  [4][]step
	closers []func()
}

func (p *prepared) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// prepare seeds one size's databases and readies its steps; with rpc it
// starts the services on them. p.close undoes what it did, even after an
// error.
func prepare(ctx context.Context, userURL, authURL, hash string, sz size, samples int, rpc *rpcServices, conc int, log io.Writer) (p *prepared, err error) {
	p = &prepared{res: result{size: sz}}
	res := &p.res
	udb, err := database.Open(ctx, userURL, userstore.Migrations)
	if err != nil {
		return p, err
	}
	p.closers = append(p.closers, func() { _ = udb.Close() })
	adb, err := database.Open(ctx, authURL, authstore.Migrations)
	if err != nil {
		return p, err
	}
	p.closers = append(p.closers, func() { _ = adb.Close() })
	var tokens strings.Builder
	start := time.Now()
	// The store's refreshes and the RPC ones each use tokens of their own.
	o := seeding.Options{Users: sz.users, PasswordHash: hash, Families: sz.families, Tokens: &tokens, TokenCount: 2 * samples}
	ids, emails, err := seeding.Users(ctx, udb, o)
	if err != nil {
		return p, err
	}
	if err := seeding.Families(ctx, adb, o, ids); err != nil {
		return p, err
	}
	res.seedTime = time.Since(start)
	fmt.Fprintf(log, "scale:   seeded in %s; analysing\n", res.seedTime.Round(time.Millisecond))
	for _, db := range []*database.DB{udb, adb} {
		q := "ANALYZE"
		if _, err := db.SQL().ExecContext(ctx, q); err != nil {
			return p, err
		}
	}
	if res.bytesPerUser, err = sizeOf(ctx, udb, userURL, []string{"users"}, sz.users); err != nil {
		return p, err
	}
	if res.bytesPerFm, err = sizeOf(ctx, adb, authURL, []string{"refresh_families", "refresh_tokens"}, sz.families); err != nil {
		return p, err
	}

	users := userstore.New(udb)
	refresh := authstore.New(adb)
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	deepAt := len(sorted) * 9 / 10
	deep := sorted[deepAt]
	// Seeded, so two runs pick the same rows; nothing here is a secret.
	rng := rand.New(rand.NewPCG(uint64(sz.users), uint64(sz.families))) //nolint:gosec // reproducible picks, not a secret
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	toks := strings.Fields(tokens.String())
	half := min(samples, len(toks)/2)
	storeToks, rpcToks := toks[:half], toks[half:]
	now := time.Now()
	reads := []step{
		{name: "GetUser (store Get)", n: samples, conc: 1, f: func(int) error { _, err := users.Get(ctx, pick(ids)); return err }},
		{name: "Login lookup (GetByEmail)", n: samples, conc: 1, f: func(int) error { _, err := users.GetByEmail(ctx, pick(emails)); return err }},
		{name: "ListUsers, first page of 50", n: samples / 4, conc: 1, f: func(int) error { _, err := users.List(ctx, "", 50); return err }},
		{name: "ListUsers, page 90% deep", n: samples / 4, conc: 1, f: func(int) error { _, err := users.List(ctx, deep, 50); return err }},
		{name: "RefreshToken (Lookup + Rotate)", n: len(storeToks), conc: 1, f: func(i int) error {
			sum := sha256.Sum256([]byte(storeToks[i]))
			h := hex.EncodeToString(sum[:])
			if _, _, err := refresh.Lookup(ctx, h); err != nil {
				return err
			}
			next := sha256.Sum256([]byte(storeToks[i] + "next"))
			_, err := refresh.Rotate(ctx, h, auth.RefreshToken{Hash: hex.EncodeToString(next[:]), IssuedAt: now, IdleExpiresAt: now.Add(time.Hour)}, now, 0)
			return err
		}},
	}
	// The revocations end sessions the refreshes use: they come last.
	// Each revokes a user no other call has, so every call ends the ten
	// live families at each size (at 1k users, random picks would repeat
	// users and time no-op updates, flattering the smallest size).
	order := rng.Perm(len(ids))
	k := min(samples/4, len(ids)/2)
	storeRevoke, rpcRevoke := make([]string, k), make([]string, k)
	for i := range k {
		storeRevoke[i], rpcRevoke[i] = ids[order[i]], ids[order[k+i]]
	}
	ends := []step{
		{name: "RevokeAllSessions (one user's families)", n: len(storeRevoke), conc: 1, f: func(i int) error {
			_, err := refresh.RevokeUserFamilies(ctx, storeRevoke[i], 1<<40, now)
			return err
		}},
		{name: "background purge, nothing to purge", n: 200, conc: 1, f: func(int) error { _, err := refresh.PurgeExpired(ctx, now, time.Hour); return err }},
		{name: "start: Open + migrations (user database)", n: 20, conc: 1, f: func(int) error {
			db, err := database.Open(ctx, userURL, userstore.Migrations)
			if err == nil {
				err = db.Close()
			}
			return err
		}},
	}
	p.groups[0], p.groups[2] = reads, ends
	if rpc == nil {
		return p, nil
	}
	fmt.Fprintf(log, "scale:   starting the services on the seeded databases\n")
	p.closers = append(p.closers, rpc.stop)
	if _, err := rpc.start(userURL, authURL); err != nil {
		return p, err
	}
	// After deep: the len(sorted)-deepAt-1 seeded users that sort after
	// it, and the bootstrap admin, whose UUIDv7 is newer than any of them.
	after := len(sorted) - deepAt
	rpcReads, rpcEnds, closeClients, err := rpc.steps(ctx, ids, emails, rpcToks, rpcRevoke, deep, after, samples, conc)
	if err != nil {
		return p, err
	}
	p.closers = append(p.closers, closeClients)
	p.groups[1], p.groups[3] = rpcReads, append(rpcEnds, rpc.restarts(userURL, 20))
	return p, nil
}

// timeRounds times every step of every size in rounds: each round makes a
// share of each step's calls on each size in turn (in reverse order every
// other round), so the sizes of one step are measured seconds apart, not
// a seeding (minutes) apart, and a drift of this machine's speed falls on
// all of them. A step's ratio is the median over rounds of its p50 at
// that size over its p50 at the first size in the same round.
func timeRounds(ps []*prepared, rounds int, log io.Writer) error {
	for g := range ps[0].groups {
		for i, st := range ps[0].groups[g] {
			fmt.Fprintf(log, "scale:   %s\n", st.name)
			ops := make([]op, len(ps))
			for r := range rounds {
				order := make([]int, len(ps))
				for k := range order {
					order[k] = k
					if r%2 == 1 {
						order[k] = len(ps) - 1 - k
					}
				}
				for _, k := range order {
					st := ps[k].groups[g][i]
					part, err := timeStep(st, st.n*r/rounds, st.n*(r+1)/rounds)
					if err != nil {
						return fmt.Errorf("%s: %w", ps[k].res.size, err)
					}
					ops[k].name = st.name
					ops[k].d = append(ops[k].d, part.d...)
					ops[k].wall += part.wall
					ops[k].roundP50 = append(ops[k].roundP50, pct(part.d, 0.5))
				}
			}
			for k, p := range ps {
				slices.Sort(ops[k].d)
				for r := range rounds {
					ops[k].ratios = append(ops[k].ratios, float64(ops[k].roundP50[r])/float64(ops[0].roundP50[r]))
				}
				if g%2 == 0 {
					p.res.ops = append(p.res.ops, ops[k])
				} else {
					p.res.rpcOps = append(p.res.rpcOps, ops[k])
				}
			}
		}
	}
	return nil
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

// pct is the p-quantile of sorted (timeStep and timeRounds sort what
// they record, so nothing is copied or sorted again here).
func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func report(w io.Writer, dialect string, rs []result, conc, rounds int) {
	fmt.Fprintf(w, "\n%s, the store's queries: p50 / p99 of one call, ops/s of one caller (1 / mean), and the p50 as a ratio to the smallest size's (median of %d rounds' ratios)\n\n", dialect, rounds)
	table(w, rs, func(r result) []op { return r.ops })
	fmt.Fprint(w, "| bytes per user / per family (tables and indexes) |")
	for _, r := range rs {
		fmt.Fprintf(w, " %.0f / %.0f |", r.bytesPerUser, r.bytesPerFm)
	}
	fmt.Fprint(w, "\n| seeding time |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s |", r.seedTime.Round(100*time.Millisecond))
	}
	fmt.Fprintln(w)
	if len(rs[0].rpcOps) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s, gRPC calls to the services (user cache off): p50 / p99 of one call, calls per second with %d in flight (Login: %d, start: 1), and the p50 as a ratio to the smallest size's (median of %d rounds' ratios)\n\n", dialect, conc, min(conc, 2), rounds)
	table(w, rs, func(r result) []op { return r.rpcOps })
}

func table(w io.Writer, rs []result, ops func(result) []op) {
	fmt.Fprint(w, "| Operation |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s |", r.size)
	}
	fmt.Fprint(w, "\n|---|")
	for range rs {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for i, first := range ops(rs[0]) {
		fmt.Fprintf(w, "| %s |", first.name)
		for _, r := range rs {
			o := ops(r)[i]
			fmt.Fprintf(w, " %s / %s, %.0f/s, %.2f× |", ms(pct(o.d, 0.5)), ms(pct(o.d, 0.99)),
				float64(len(o.d))/o.wall.Seconds(), median(o.ratios))
		}
		fmt.Fprintln(w)
	}
}

// median of xs, the mean of the middle two for an even count.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + " ms" }
