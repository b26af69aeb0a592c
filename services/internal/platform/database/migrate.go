package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrate applies every pending migration in migrations/<dialect>.
func migrate(ctx context.Context, db *DB, migrations fs.FS) error {
	dir := string(db.dialect)
	if _, err := fs.Stat(migrations, dir); err != nil {
		return fmt.Errorf("no %s/ directory in the migrations: %w", dir, err)
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return err
	}
	// Only the files passed in count: migrations registered globally by
	// some other package must not run against this database.
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	gooseDialect := goose.DialectSQLite3
	if db.dialect == DialectPostgres {
		gooseDialect = goose.DialectPostgres
		// Replicas starting together would otherwise race to apply the
		// same migration; an advisory lock makes them take turns.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, db.sql, sub, opts...)
	if err != nil {
		return err
	}
	if _, err := provider.Up(ctx); err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return fmt.Errorf("%s: %w", partial.Failed.Source.Path, err)
		}
		return err
	}
	return nil
}
