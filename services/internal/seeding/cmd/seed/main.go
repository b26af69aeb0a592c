package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alexedwards/argon2id"

	authstore "github.com/gatehouse-dev/gatehouse/services/internal/auth/store"
	"github.com/gatehouse-dev/gatehouse/services/internal/platform/database"
	"github.com/gatehouse-dev/gatehouse/services/internal/seeding"
	userstore "github.com/gatehouse-dev/gatehouse/services/internal/user/store"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

type options struct {
	userDB, authDB   string
	users, families  int
	password         string
	tokens           string
	tokenCount       int
	batch            int
	argon2idMemoryKB uint32
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.StringVar(&o.userDB, "user-db", "", "the User service's DATABASE_URL")
	fs.StringVar(&o.authDB, "auth-db", "", "the Auth service's DATABASE_URL (with -families)")
	fs.IntVar(&o.users, "users", 1000, "users to add")
	fs.IntVar(&o.families, "families", 0, "refresh families to add, spread over the users added")
	fs.StringVar(&o.password, "password", "seeded users share this password", "every seeded user's password")
	fs.StringVar(&o.tokens, "tokens", "", "file for refresh tokens of seeded families, one per line")
	fs.IntVar(&o.tokenCount, "token-count", 1000, "how many families get a token written to -tokens")
	fs.IntVar(&o.batch, "batch", 10000, "rows per transaction")
	mem := fs.Uint("argon2id-memory-kib", 19*1024, "argon2id memory of the one hash (the services' default cost)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.argon2idMemoryKB = uint32(*mem)
	if o.userDB == "" || o.users <= 0 {
		return errors.New("-user-db and -users > 0 are required")
	}
	if o.families > 0 && o.authDB == "" {
		return errors.New("-families needs -auth-db")
	}
	if o.batch <= 0 {
		return errors.New("-batch must be positive")
	}

	hash, err := argon2id.CreateHash(o.password, &argon2id.Params{
		Memory: o.argon2idMemoryKB, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32,
	})
	if err != nil {
		return err
	}
	users, err := database.Open(ctx, o.userDB, userstore.Migrations)
	if err != nil {
		return err
	}
	defer func() { _ = users.Close() }()
	start := time.Now()
	so := seeding.Options{Users: o.users, PasswordHash: hash, Batch: o.batch, Families: o.families, TokenCount: o.tokenCount}
	ids, _, err := seeding.Users(ctx, users, so)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "seed: %d users in %s\n", len(ids), time.Since(start).Round(time.Millisecond))
	if o.families == 0 {
		return nil
	}
	authDB, err := database.Open(ctx, o.authDB, authstore.Migrations)
	if err != nil {
		return err
	}
	defer func() { _ = authDB.Close() }()
	start = time.Now()
	if o.tokens != "" {
		f, err := os.Create(o.tokens)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		so.Tokens = f
	}
	if err := seeding.Families(ctx, authDB, so, ids); err != nil {
		return err
	}
	fmt.Fprintf(out, "seed: %d refresh families in %s\n", o.families, time.Since(start).Round(time.Millisecond))
	return nil
}
