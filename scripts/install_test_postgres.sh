#!/usr/bin/env bash
# Debian's PostgreSQL server for the standalone-cluster tests (tests/services.py starts a throwaway one as the
# MLflow server's backend store, as docker-compose.yml does); a no-op when initdb and pg_ctl are already there,
# on PATH or under /usr/lib/postgresql/*/bin (Debian keeps them off PATH). Called by .ci/run and by the tests'
# set-up; the cluster tests are skipped, saying why, only where this fails.
# (Debian's package also creates and starts a default cluster on port 5432; the tests use their own on a free port.)
set -euo pipefail
have_postgres() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    return 0
  fi
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ]; then
      return 0
    fi
  done
  return 1
}
if have_postgres; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends postgresql \
  || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends postgresql; }
have_postgres
