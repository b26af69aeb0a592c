-- +goose Up
CREATE TABLE widgets (
    id   TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE widgets;
