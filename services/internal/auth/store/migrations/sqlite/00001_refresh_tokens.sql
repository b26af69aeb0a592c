-- +goose Up
-- Times are declared TIMESTAMP so the driver parses them back into
-- time.Time; they are stored as UTC text with microseconds, a format whose
-- text order is time order, so comparisons in SQL are sound.
CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    roles      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(roles) AND json_type(roles) = 'array'),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

-- PurgeExpired looks families up by either end of their life.
CREATE INDEX refresh_families_expires_at_idx ON refresh_families (expires_at);
CREATE INDEX refresh_families_revoked_at_idx ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
-- Ending every session of a user (deleted, password changed).
CREATE INDEX refresh_families_user_id_idx ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    hash            TEXT PRIMARY KEY NOT NULL,
    family_id       TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at       TIMESTAMP NOT NULL,
    idle_expires_at TIMESTAMP NOT NULL,
    rotated_at      TIMESTAMP
);

-- The cascade from refresh_families and ActiveTokens look tokens up by
-- family.
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
-- Safety net under Rotate: a family never has two current tokens.
CREATE UNIQUE INDEX refresh_tokens_one_active_key ON refresh_tokens (family_id) WHERE rotated_at IS NULL;

-- +goose Down
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
