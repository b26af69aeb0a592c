-- +goose Up
CREATE TABLE widgets (
    id   text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    note text NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE widgets;
