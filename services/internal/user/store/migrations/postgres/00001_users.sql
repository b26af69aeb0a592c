-- +goose Up
-- COLLATE "C" makes id comparisons bytewise, so keyset pagination on
-- UUIDv7 text follows creation order whatever the database locale is.
CREATE TABLE users (
    id            text COLLATE "C" PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    roles         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(roles) = 'array'),
    password_hash text NOT NULL,
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL
);

-- Case-insensitive even if a caller forgets to lower-case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- +goose Down
DROP TABLE users;
