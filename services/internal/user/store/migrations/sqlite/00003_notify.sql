-- +goose Up
-- PostgreSQL's 00003 adds the trigger that tells every replica which users
-- changed. On SQLite there is one process, the database's one writer, and
-- its cache sees every write itself; this version keeps the two schemas'
-- numbers in step.
SELECT 1;

-- +goose Down
SELECT 1;
