package database

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gatehouse-dev/gatehouse/services/internal/platform/redact"
)

// defaultConnectTimeout bounds one connection attempt when the URL sets no
// connect_timeout.
const defaultConnectTimeout = 2 * time.Second

// openPostgres returns the pool and the connection settings it uses, for
// the connections Listen opens outside it.
func openPostgres(ctx context.Context, raw string) (*sql.DB, *pgx.ConnConfig, error) {
	safe := redact.URL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// Without a parse we cannot tell which part is the password, so
		// nothing from the input or from the parser goes into the message.
		return nil, nil, fmt.Errorf("database: invalid PostgreSQL URL %s", safe)
	}
	secret, _ := u.User.Password()
	if secret == "" {
		secret = u.Query().Get("password")
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, nil, wrapf(err, secret, "database: invalid PostgreSQL URL %s", safe)
	}
	if secret == "" {
		secret = cfg.Password // from PGPASSWORD or a passfile
	}
	// Without a bound a connection attempt to a database that is gone (its
	// pod deleted, packets dropped) waits for TCP to give up, minutes, and
	// every call waiting on it runs into its client's deadline instead of
	// failing with Unavailable. connect_timeout in the URL overrides it.
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	db := sql.OpenDB(&failFastConnector{Connector: stdlib.GetConnector(*cfg), now: time.Now})
	// Bounded so that several replicas stay well under the server's
	// max_connections (100 by default); tune through DB.SQL().
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, nil, wrapf(err, secret, "database: connect to %s", safe)
	}
	return db, cfg, nil
}
