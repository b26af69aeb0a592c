-- +goose Up
-- The client that logged in (LoginRequest.client_id, one of CLIENT_IDS).
-- Every access token of the session names it in its "client_id" claim
-- (RFC 9068). Sessions from before this migration belong to the default
-- client.
ALTER TABLE refresh_families ADD COLUMN client_id TEXT NOT NULL DEFAULT 'gatehouse';

-- +goose Down
ALTER TABLE refresh_families DROP COLUMN client_id;
