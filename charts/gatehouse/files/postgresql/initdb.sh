#!/bin/bash
# Run once by the official postgres image's entrypoint, when the data directory is empty
# (/docker-entrypoint-initdb.d). Creates one role and one database per Gatehouse service: each service
# owns its database and cannot read the other's. Passwords come from the chart's Secret through the
# GATEHOUSE_*_PASSWORD variables; psql's :'var' quoting keeps them out of the SQL text.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	-v user_password="$GATEHOUSE_USER_PASSWORD" \
	-v auth_password="$GATEHOUSE_AUTH_PASSWORD" <<'EOSQL'
CREATE ROLE gatehouse_user LOGIN PASSWORD :'user_password';
CREATE DATABASE gatehouse_user OWNER gatehouse_user;
REVOKE ALL ON DATABASE gatehouse_user FROM PUBLIC;
CREATE ROLE gatehouse_auth LOGIN PASSWORD :'auth_password';
CREATE DATABASE gatehouse_auth OWNER gatehouse_auth;
REVOKE ALL ON DATABASE gatehouse_auth FROM PUBLIC;
EOSQL
