-- +goose Up
CREATE TABLE refresh_families (
    id         text PRIMARY KEY,
    user_id    text NOT NULL,
    roles      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(roles) = 'array'),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- PurgeExpired looks families up by either end of their life.
CREATE INDEX refresh_families_expires_at_idx ON refresh_families (expires_at);
CREATE INDEX refresh_families_revoked_at_idx ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
-- Ending every session of a user (deleted, password changed).
CREATE INDEX refresh_families_user_id_idx ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    hash            text PRIMARY KEY,
    family_id       text NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at       timestamptz NOT NULL,
    idle_expires_at timestamptz NOT NULL,
    rotated_at      timestamptz
);

-- The cascade from refresh_families and ActiveTokens look tokens up by
-- family.
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
-- Safety net under Rotate: a family never has two current tokens.
CREATE UNIQUE INDEX refresh_tokens_one_active_key ON refresh_tokens (family_id) WHERE rotated_at IS NULL;

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
