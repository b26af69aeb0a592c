-- +goose Up
-- Every replica of the User service keeps recently read users in memory
-- (store.Cached). Each change or deletion of a user row announces its id on
-- the channel gatehouse_users, at commit, whoever made it (any replica, a
-- migration, an operator's psql), and each replica forgets that user. A
-- trigger rather than a NOTIFY in the store's statements, so no write path
-- can be forgotten. Inserts need none: a new id has nothing to forget. A
-- TRUNCATE fires no row trigger: its own statement trigger announces "*",
-- every user. (Sessions with session_replication_role = replica, as
-- pg_restore and logical replication run, fire no triggers at all: restart
-- the replicas after such a load.)
-- +goose StatementBegin
CREATE FUNCTION gatehouse_users_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gatehouse_users', OLD.id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION gatehouse_users_changed();
-- +goose StatementBegin
CREATE FUNCTION gatehouse_users_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gatehouse_users', '*');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_users_truncated();

-- +goose Down
DROP TRIGGER users_truncated ON users;
DROP FUNCTION gatehouse_users_truncated();
DROP TRIGGER users_changed ON users;
DROP FUNCTION gatehouse_users_changed();
