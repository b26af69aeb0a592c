-- +goose Up
-- Times are declared TIMESTAMP so the driver parses them back into
-- time.Time; they are stored as UTC text with microseconds.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    roles         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(roles) AND json_type(roles) = 'array'),
    password_hash TEXT NOT NULL,
    create_time   TIMESTAMP NOT NULL,
    update_time   TIMESTAMP NOT NULL
);

-- Case-insensitive even if a caller forgets to lower-case. SQLite's lower()
-- folds ASCII letters only.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- +goose Down
DROP TABLE users;
