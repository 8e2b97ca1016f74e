#!/usr/bin/env bash
# Run once by the postgres image when it initialises an empty data directory
# (/docker-entrypoint-initdb.d): creates the login role the application runs as. It owns
# nothing; `migrate`, run as the owner (POSTGRES_USER) with DATABASE_RUNTIME_ROLE set,
# grants it its privileges. README, "Database roles".
set -euo pipefail

psql --no-psqlrc -v ON_ERROR_STOP=1 \
    -v role="${APP_DATABASE_USER:-ordertrack_app}" \
    -v password="${APP_DATABASE_PASSWORD:?Set APP_DATABASE_PASSWORD}" \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
SQL
