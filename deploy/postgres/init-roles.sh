#!/bin/sh
# Run by the postgres container on its first start (docker-entrypoint-initdb.d):
# create fingerplat's schema owner, runtime role and database (roles.sql).
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
     -v owner=fingerplat_owner -v app=fingerplat_app -v db=fingerplat \
     -v owner_password="$FINGERPLAT_OWNER_PASSWORD" -v app_password="$FINGERPLAT_APP_PASSWORD" \
     -f /fingerplat/roles.sql
