#!/usr/bin/env bash
# Installs what the tests need from the system package manager, idempotently: the PostgreSQL
# server binaries (initdb, pg_ctl) that tests/ledger start a throwaway server with.
# Prints nothing when everything is already there. CI: root on a fresh Debian 12.
set -euo pipefail

have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    # Debian installs them outside PATH; tests/ledger/conftest.py looks there too.
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null 2>&1
}

if have_postgres; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "test-deps: PostgreSQL server binaries (initdb, pg_ctl) are missing; install the" \
             "'postgresql' package as root (apt-get install postgresql) and rerun" >&2
        exit 1
    fi
else
    SUDO=""
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: no apt-get here; install PostgreSQL server binaries (initdb, pg_ctl) by hand" >&2
    exit 1
fi

echo "test-deps: installing PostgreSQL server binaries with apt-get"
export DEBIAN_FRONTEND=noninteractive
# `apt-get update` only when the package lists do not know the package yet.
if ! apt-cache show postgresql >/dev/null 2>&1; then
    $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_postgres || { echo "test-deps: PostgreSQL installed but initdb/pg_ctl not found" >&2; exit 1; }
