#!/usr/bin/env bash
# Project test command: ./scripts/test.sh [extra cargo test args...]
#
# Runs `cargo test --locked` against PostgreSQL and an S3-compatible server:
#   S3: uses $TEST_S3_ENDPOINT if set; otherwise starts moto's S3 server (PyPI `moto[server]`,
#   installed with pip if missing) on a free loopback port, stopped again on exit.
# PostgreSQL:
#   1. uses the server at $TEST_DATABASE_URL
#      (default postgres://postgres@127.0.0.1:5432/postgres) if one answers there
#      and accepts the login;
#   2. otherwise starts a throwaway cluster from the local PostgreSQL binaries
#      (initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin) on a free
#      loopback port, and removes it again on exit;
#   3. otherwise fails with instructions for getting PostgreSQL.
set -euo pipefail

cd "$(dirname "$0")/.."

url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# URL with any password replaced by ****.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:****@#' <<<"$1"; }

# Prints "host port" parsed from a postgres:// URL (defaults localhost 5432).
url_host_port() {
    local rest=${1#*://} host port=5432
    rest=${rest%%/*}
    rest=${rest%%\?*}
    rest=${rest##*@}
    if [[ $rest == \[* ]]; then # [ipv6]:port
        host=${rest%%]*}
        host=${host#[}
        [[ $rest == *]:* ]] && port=${rest##*]:}
    else
        host=${rest%%:*}
        [[ $rest == *:* ]] && port=${rest##*:}
    fi
    printf '%s %s\n' "${host:-localhost}" "${port:-5432}"
}

tcp_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# Does a server answer at URL?
pg_answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -t 3 -d "$1"
    elif command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=3 psql -w -X -Atq -d "$1" -c 'select 1' >/dev/null 2>&1 </dev/null
    else
        local host port
        read -r host port < <(url_host_port "$1")
        tcp_open "$host" "$port"
    fi
}

# pg_isready/TCP only prove that something listens. A stock Debian cluster
# answers on 5432 but wants a password over TCP, so when psql is available
# also check the login works. Prints psql's error on failure.
pg_login_ok() {
    command -v psql >/dev/null 2>&1 || return 0
    local err
    if err=$(PGCONNECT_TIMEOUT=5 psql -w -X -Atq -d "$1" -c 'select 1' 2>&1 >/dev/null </dev/null); then
        return 0
    fi
    printf '    %s\n' "$err" >&2
    return 1
}

run_tests() {
    export TEST_DATABASE_URL=$1
    local status=0
    cargo test --locked "${cargo_args[@]}" || status=$?
    exit "$status"
}

cargo_args=("$@")

# --- S3-compatible server -----------------------------------------------------

s3_pid=
s3_log=
stop_s3() {
    if [[ -n $s3_pid ]]; then
        kill "$s3_pid" 2>/dev/null || true
        wait "$s3_pid" 2>/dev/null || true
        s3_pid=
    fi
    if [[ -n $s3_log ]]; then
        rm -f "$s3_log"
        s3_log=
    fi
}
trap stop_s3 EXIT

if [[ -z ${TEST_S3_ENDPOINT:-} ]]; then
    if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
        log "Installing moto's S3 server from PyPI (pip install 'moto[server]')"
        python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' ||
            die "could not install moto[server]; set TEST_S3_ENDPOINT to an S3-compatible server instead"
    fi
    s3_port=
    for ((p = 55700; p < 55900; p++)); do
        if ! tcp_open 127.0.0.1 "$p"; then
            s3_port=$p
            break
        fi
    done
    [[ -n $s3_port ]] || die "no free TCP port found in 55700-55899 for the S3 server"
    s3_log=$(mktemp "${TMPDIR:-/tmp}/chat-api-s3.XXXXXX")
    python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >"$s3_log" 2>&1 &
    s3_pid=$!
    for ((i = 0; i < 150; i++)); do
        tcp_open 127.0.0.1 "$s3_port" && break
        kill -0 "$s3_pid" 2>/dev/null || { cat "$s3_log" >&2; die "the S3 server did not start"; }
        sleep 0.2
    done
    tcp_open 127.0.0.1 "$s3_port" || die "the S3 server does not answer on 127.0.0.1:$s3_port"
    export TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
    log "Using moto's S3 server at $TEST_S3_ENDPOINT"
else
    log "Using the S3-compatible server at $TEST_S3_ENDPOINT"
fi

if pg_answers "$url"; then
    if pg_login_ok "$url"; then
        log "Using PostgreSQL at $(redact "$url")"
        run_tests "$url"
    fi
    log "PostgreSQL at $(redact "$url") answers but refuses the login; starting a throwaway cluster instead"
else
    log "No PostgreSQL answers at $(redact "$url"); starting a throwaway cluster"
fi

# --- Throwaway cluster --------------------------------------------------------

bindir=
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    bindir=$(dirname "$(command -v pg_ctl)")
    [[ -x $bindir/initdb ]] || bindir=
fi
if [[ -z $bindir ]]; then
    for d in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r); do
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
            bindir=$d
            break
        fi
    done
fi
if [[ -z $bindir ]]; then
    cat >&2 <<EOF
error: no PostgreSQL server answers at $(redact "$url")
       and no PostgreSQL binaries (initdb, pg_ctl) were found to start a throwaway one.
Either:
  - install PostgreSQL (this script then starts a temporary cluster itself):
        sudo apt-get install postgresql
  - or point the tests at a running server:
        TEST_DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB ./scripts/test.sh
EOF
    exit 1
fi

# initdb and postgres refuse to run as root: run them as the postgres user.
if [[ $(id -u) -eq 0 ]]; then
    getent passwd postgres >/dev/null ||
        die "running as root, but there is no 'postgres' user to run the throwaway cluster as (run as a normal user, or set TEST_DATABASE_URL)"
    if command -v runuser >/dev/null 2>&1; then
        as_pg() { (cd / && runuser -u postgres -- "$@"); }
    else
        as_pg() { (cd / && su postgres -s /bin/bash -c "$(printf '%q ' "$@")"); }
    fi
else
    as_pg() { "$@"; }
fi

tmp=
cleanup() {
    local rc=$?
    stop_s3
    if [[ -n $tmp ]]; then
        if [[ -f $tmp/data/postmaster.pid ]]; then
            as_pg "$bindir/pg_ctl" -D "$tmp/data" stop -m immediate >/dev/null 2>&1 || true
        fi
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The dir also holds the Unix socket (path must stay short) and, as root, must
# be reachable by the postgres user: fall back to /tmp if $TMPDIR is not.
for base in "${TMPDIR:-/tmp}" /tmp; do
    tmp=$(mktemp -d "${base%/}/chat-api-pg.XXXXXX")
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$tmp"
    fi
    if ((${#tmp} <= 80)) && as_pg test -w "$tmp" -a -x "$tmp"; then
        break
    fi
    rm -rf "$tmp"
    tmp=
done
[[ -n $tmp ]] || die "could not create a temporary directory usable by the PostgreSQL server"

port=
for ((p = 55432; p < 55632; p++)); do
    if ! tcp_open 127.0.0.1 "$p"; then
        port=$p
        break
    fi
done
[[ -n $port ]] || die "no free TCP port found in 55432-55631"

if ! as_pg "$bindir/initdb" -D "$tmp/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1; then
    cat "$tmp/initdb.log" >&2
    die "initdb failed"
fi
if ! as_pg "$bindir/pg_ctl" -w -t 60 -D "$tmp/data" -l "$tmp/log" \
    -o "-p $port -k '$tmp' -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
    cat "$tmp/log" >&2 || true
    die "could not start the throwaway PostgreSQL cluster"
fi

url=postgres://postgres@127.0.0.1:$port/postgres
log "Using throwaway PostgreSQL ($bindir) at $url"
run_tests "$url"
