#!/usr/bin/env bash
# Installs what the tests need from the system package manager, idempotently:
# - the PostgreSQL server binaries (initdb, pg_ctl) that tests/ledger start a throwaway server with;
# - Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) that
#   tests/gateway drive the application form with. No browser is downloaded from anywhere else;
# - Node.js and npm (Debian's `nodejs`, 18.19 on Debian 12, and `npm`) that
#   tests/connectors/test_third_party_js.py runs the JavaScript clients with (it installs them into
#   tests/js with `npm ci`, from tests/js/package-lock.json).
# Prints nothing when everything is already there. CI: root on a fresh Debian 12.
set -euo pipefail

have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    # Debian installs them outside PATH; tests/ledger/conftest.py looks there too.
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null 2>&1
}

have_chromium() {
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
}

have_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
have_chromium || missing+=(chromium chromium-driver)
have_node || missing+=(nodejs npm)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "test-deps: missing system packages: ${missing[*]}; install them as root" \
             "(apt-get install ${missing[*]}) and rerun" >&2
        exit 1
    fi
else
    SUDO=""
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: no apt-get here; install by hand: ${missing[*]}" \
         "(PostgreSQL server binaries initdb/pg_ctl; Chromium and its chromedriver; Node.js >= 18.17 and npm)" >&2
    exit 1
fi

echo "test-deps: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
# `apt-get update` only when the package lists do not know a package yet.
for package in "${missing[@]}"; do
    if ! apt-cache show "$package" >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        break
    fi
done
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
have_postgres || { echo "test-deps: PostgreSQL installed but initdb/pg_ctl not found" >&2; exit 1; }
have_chromium || { echo "test-deps: chromium installed but /usr/bin/chromium or /usr/bin/chromedriver not found" >&2; exit 1; }
have_node || { echo "test-deps: nodejs and npm installed but node or npm not found" >&2; exit 1; }
