-- +goose Up
-- The user's session version at login (see the User service's users
-- table). A refresh of a family whose version is no longer the user's is
-- refused, and the family revoked. Families from before this migration
-- read 0, as do users who never changed credentials since.
ALTER TABLE refresh_families ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE refresh_families DROP COLUMN session_version;
