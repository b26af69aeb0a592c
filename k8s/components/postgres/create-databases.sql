-- Run once by the postgres image on an empty data directory. POSTGRES_DB
-- already created gatehouse_user; the Auth service owns a database of its own.
CREATE DATABASE gatehouse_auth OWNER gatehouse;
