-- +goose Up
-- version: the etag (AIP-154), moved on by every change of the user.
-- session_version: moved on whenever the user's sessions end (password
-- changed or reset, email changed, EndSessions); tokens and refresh
-- families carry the version they were issued at, and an older one is
-- refused. Tokens issued before this migration carry none, which reads as
-- 0: they stay valid until the user's first such change.
ALTER TABLE users ADD COLUMN version bigint NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN session_version bigint NOT NULL DEFAULT 0;

-- The role "service" belongs to the Auth service's own identity; a human
-- account holding it could call VerifyPassword. Take it away and end the
-- sessions whose tokens still carry it.
UPDATE users SET
    roles = roles - 'service',
    session_version = session_version + 1,
    version = version + 1
WHERE roles @> '["service"]';

-- +goose Down
ALTER TABLE users DROP COLUMN session_version;
ALTER TABLE users DROP COLUMN version;
