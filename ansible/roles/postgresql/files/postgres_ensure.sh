#!/bin/sh
# Creates (or brings up to date) a PostgreSQL login role and the database it owns; prints CHANGED
# when it changed anything, so that Ansible reports it and a second run reports nothing.
# The password comes in TRE_DB_ROLE_PASSWORD, never on a command line.
set -eu
role="$1" database="$2"
psql() { runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }
for _ in $(seq 1 30); do psql -c 'select 1' >/dev/null 2>&1 && break; sleep 1; done
if [ -z "$(psql -c "select 1 from pg_roles where rolname = '$role'")" ]; then
  psql -c "create role \"$role\" login" && echo CHANGED
fi
# The password is checked by logging in with it, so a changed vault value is applied.
if ! PGPASSWORD="$TRE_DB_ROLE_PASSWORD" runuser -u postgres -- \
     psql -X -h 127.0.0.1 -U "$role" -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
  printf '\\getenv password TRE_DB_ROLE_PASSWORD\nalter role "%s" password :'"'"'password'"'"';\n' "$role" | psql
  echo CHANGED
fi
if [ -z "$(psql -c "select 1 from pg_database where datname = '$database'")" ]; then
  psql -c "create database \"$database\" owner \"$role\"" && echo CHANGED
fi
