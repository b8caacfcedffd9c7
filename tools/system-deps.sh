#!/usr/bin/env bash
# What `make test` and `make run TOPOLOGY=distributed` need beyond Python, installed only when missing:
#   - Debian packages: postgresql (initdb/pg_ctl for a throw-away metadata DB), redis-server (Celery broker),
#     haproxy (the load balancer in front of the receivers), chromium (the operator pages' browser test);
#   - dynalite (npm), a second DynamoDB implementation the ledger contract suite runs on, with `npm ci` into
#     tools/dynalite/node_modules from the committed package-lock.json.
# Idempotent and quiet when everything is there (a few `command -v` and one file comparison): `make test`
# and .ci/run call it every time. apt-get update runs only when a package is missing. The packages' own
# system services are never started: the project starts its own servers on free loopback ports, and a
# system redis or postgres would hold the default ports. Needs root or sudo only when something is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DYNALITE_DIR="$ROOT/tools/dynalite"
export DEBIAN_FRONTEND=noninteractive

say() { echo "system-deps: $*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -E "$@"
    else
        say "need root or sudo to run: $*" >&2
        exit 1
    fi
}

# Debian puts the PostgreSQL server binaries in /usr/lib/postgresql/<major>/bin, off PATH.
postgres_bindir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

has_program() {  # also looks in the sbin folders, which a non-root PATH may lack (haproxy is in /usr/sbin)
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]
}

missing=()
postgres_bindir >/dev/null || missing+=(postgresql)
has_program redis-server || missing+=(redis-server)
has_program haproxy || missing+=(haproxy)
has_program chromium || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    # invoke-rc.d and deb-systemd-invoke ask policy-rc.d; exit 101 = "do not start". Any policy already
    # there is put back afterwards.
    policy=/usr/sbin/policy-rc.d
    backup=""
    if [ -e "$policy" ]; then
        backup="$(mktemp)"
        as_root cp -p "$policy" "$backup"
    fi
    restore_policy() {
        if [ -n "$backup" ]; then as_root cp -p "$backup" "$policy"; as_root rm -f "$backup"; else as_root rm -f "$policy"; fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    restore_policy
    trap - EXIT
    # On a booted systemd machine the units we added are still enabled for the next boot: disable them.
    if [ -d /run/systemd/system ]; then
        for unit in "${missing[@]}"; do
            case "$unit" in
                postgresql | redis-server | haproxy) as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true ;;
            esac
        done
    fi
fi

# dynalite: `npm ci` when node_modules is absent or was installed from another lock file.
stamp="$DYNALITE_DIR/node_modules/.installed-from-package-lock.json"
if ! cmp -s "$DYNALITE_DIR/package-lock.json" "$stamp" || [ ! -f "$DYNALITE_DIR/node_modules/dynalite/package.json" ]; then
    say "installing dynalite (npm ci in tools/dynalite)"
    # --ignore-scripts: the only install script is classic-level's node-gyp-build, which compiles only
    # when no prebuilt binary fits; its prebuilds cover Linux x64/arm64, and the tests run dynalite in memory.
    (cd "$DYNALITE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$DYNALITE_DIR/package-lock.json" "$stamp"
fi

# Fail here, not minutes later in a test, if an install did not give the programs.
bindir="$(postgres_bindir)" || { say "PostgreSQL server binaries (initdb, pg_ctl) not found" >&2; exit 1; }
for program in redis-server haproxy chromium node; do
    has_program "$program" || { say "$program not found after install" >&2; exit 1; }
done
if [ ${#missing[@]} -gt 0 ] || [ "${VERBOSE:-}" = 1 ]; then
    say "postgres $("$bindir/pg_ctl" --version | awk '{print $3}') ($bindir), $(PATH="$PATH:/usr/sbin" redis-server --version | awk '{print $1, $3}'), $(PATH="$PATH:/usr/sbin" haproxy -v | head -1 | awk '{print $1, $3}'), node $(node --version), dynalite $(node -p "require('$DYNALITE_DIR/node_modules/dynalite/package.json').version")"
fi
