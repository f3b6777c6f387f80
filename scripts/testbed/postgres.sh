#!/usr/bin/env bash
# PostgreSQL for the audit store's tests (test/integration/audit/postgres-store.test.ts):
#   postgres.sh install   installs Debian's `postgresql` when no server binaries are found
#                         (root + apt-get; Debian's default cluster is not left running)
#   postgres.sh start     initdb (once) and start a cluster under .testbed/postgres/ on
#                         127.0.0.1:<free port, kept across restarts>, create the database
#                         paas_audit_test and the password user paas_audit, and write
#                         `export PG_BIN=…` and `export AUDIT_TEST_DATABASE_URL=postgresql://…`
#                         into .testbed/env (replacing older PG lines) and .testbed/postgres.env.
#                         Idempotent: when it is running already only the env lines are written.
#   postgres.sh stop      pg_ctl stop -m fast (a no-op when it is not running)
#   postgres.sh destroy   stop, then remove the cluster's files
#   postgres.sh bin       print the server binaries' directory (installing nothing)
# initdb and postgres refuse to run as root: as root they run as the `postgres` OS user.
# Test-only settings: fsync=off and full_page_writes=off (fast; a crash may lose the cluster).
set -euo pipefail

LOG_TAG=testbed-postgres
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DB_NAME=paas_audit_test
DB_USER=paas_audit

# Everything below uses absolute paths; the postgres user may not be able to enter the cwd.
cd /

if [[ $(id -u) == 0 ]]; then
  PG_OS_USER=postgres
  as_pg() {
    if command -v runuser >/dev/null; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  }
else
  PG_OS_USER=$(id -un)
  as_pg() { "$@"; }
fi

# find_bin prints a directory with initdb, pg_ctl and postgres: $PG_BIN, the newest
# /usr/lib/postgresql/*/bin (Debian), or pg_config --bindir.
find_bin() {
  local d candidates=()
  if [[ -n "${PG_BIN:-}" ]]; then candidates+=("$PG_BIN"); fi
  shopt -s nullglob
  local debian=(/usr/lib/postgresql/*/bin)
  shopt -u nullglob
  if ((${#debian[@]} > 0)); then
    while read -r d; do candidates+=("$d"); done < <(printf '%s\n' "${debian[@]}" | sort -V -r)
  fi
  if command -v pg_config >/dev/null; then candidates+=("$(pg_config --bindir)"); fi
  for d in "${candidates[@]}"; do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" && -x "$d/psql" ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

install_pg() {
  local bin
  if bin=$(find_bin); then
    log "PostgreSQL server binaries: $bin"
    return 0
  fi
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    die "no PostgreSQL server binaries found (initdb, pg_ctl, postgres in \$PG_BIN, /usr/lib/postgresql/*/bin or pg_config --bindir); install them (Debian: apt-get install postgresql) or set PG_BIN; installing them automatically needs root and apt-get"
  fi
  log "installing Debian's postgresql package (apt-get)"
  # Debian's maintainer scripts start the default cluster; a policy-rc.d that forbids
  # starting services keeps it down (ours is started by 'start').
  local policy=/usr/sbin/policy-rc.d added=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# added by paas-operator scripts/testbed/postgres.sh during apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added=1
    trap 'rm -f "'"$policy"'"' EXIT
  fi
  local out
  out=$(mktemp)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql; } >"$out" 2>&1; then
    tail -30 "$out" >&2
    rm -f "$out"
    die "apt-get install postgresql failed"
  fi
  rm -f "$out"
  if [[ -n "$added" ]]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # Stop the default cluster in case it was started anyway (policy-rc.d was there and allowed it).
  if command -v pg_lsclusters >/dev/null; then
    local ver name _port status _rest
    while read -r ver name _port status _rest; do
      if [[ "$status" == online* ]]; then
        log "stopping Debian's default cluster $ver/$name"
        pg_ctlcluster "$ver" "$name" stop || log "WARNING: could not stop cluster $ver/$name"
      fi
    done < <(pg_lsclusters --no-header 2>/dev/null || true)
  fi
  bin=$(find_bin) || die "postgresql was installed but no server binaries were found"
  log "installed PostgreSQL: $bin"
}

# The cluster's directory: .testbed/postgres, or a directory under /tmp when the postgres OS
# user cannot reach into the work tree (e.g. a home directory with mode 700).
fallback_root() { echo "/tmp/paas-testbed-postgres-$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"; }

pick_root() {
  local root
  for root in "$TB/postgres" "$(fallback_root)"; do
    mkdir -p "$root"
    if [[ $(id -u) == 0 ]]; then chown "$PG_OS_USER:" "$root"; fi
    chmod 700 "$root"
    if as_pg test -x "$root" -a -w "$root"; then
      echo "$root"
      return 0
    fi
    rmdir "$root" 2>/dev/null || true
  done
  die "the $PG_OS_USER OS user can write neither $TB/postgres nor $(fallback_root)"
}

existing_roots() { # the roots that hold a cluster
  local root
  for root in "$TB/postgres" "$(fallback_root)"; do
    [[ -s "$root/data/PG_VERSION" ]] && echo "$root"
  done
  return 0
}

running() { # running <bin> <data>
  [[ -s "$2/PG_VERSION" ]] && as_pg "$1/pg_ctl" -D "$2" status >/dev/null 2>&1
}

write_env() { # write_env <bin> <url>
  local lines tmp
  lines=$(printf 'export PG_BIN=%q\nexport AUDIT_TEST_DATABASE_URL=%q\n' "$1" "$2")
  printf '# Generated by scripts/testbed/postgres.sh\n%s\n' "$lines" >"$TB/postgres.env.tmp"
  mv -f "$TB/postgres.env.tmp" "$TB/postgres.env"
  if [[ -f "$TB/env" ]]; then
    tmp="$TB/env.pg.tmp"
    { grep -v -e '^export PG_BIN=' -e '^export AUDIT_TEST_DATABASE_URL=' "$TB/env" || true; printf '%s\n' "$lines"; } >"$tmp"
    mv -f "$tmp" "$TB/env"
  else
    log "no $TB/env yet (scripts/testbed/up.sh writes it); the variables are in $TB/postgres.env"
  fi
}

start() {
  local bin root data port sock password
  bin=$(find_bin) || { install_pg; bin=$(find_bin); }
  command -v python3 >/dev/null || die "python3 is needed (free ports)"
  mkdir -p "$TB"
  exec 8>"$TB/.postgres.lock"
  flock 8
  if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
  root=$(existing_roots | head -1)
  [[ -n "$root" ]] || root=$(pick_root)
  data="$root/data"
  echo "$bin" >"$root/bin"

  if [[ ! -s "$data/PG_VERSION" ]]; then
    rm -rf "$data"
    log "initdb $data ($bin)"
    if ! as_pg "$bin/initdb" -D "$data" -U "$PG_OS_USER" --auth-local=peer --auth-host=scram-sha-256 \
      -E UTF8 --locale=C --no-sync >"$root/initdb.log" 2>&1; then
      tail -20 "$root/initdb.log" >&2
      die "initdb failed (log: $root/initdb.log)"
    fi
    printf "\n# scripts/testbed/postgres.sh: port, addresses, test-only durability settings\ninclude_if_exists = 'testbed.conf'\n" \
      | as_pg tee -a "$data/postgresql.conf" >/dev/null
  fi
  if [[ ! -s "$root/password" ]]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$root/password")
  fi
  password=$(<"$root/password")

  # Unix socket: inside the cluster's directory unless that path is too long for a socket.
  sock="$root/run"
  ((${#sock} <= 90)) || sock=/tmp

  if running "$bin" "$data"; then
    port=$(<"$root/port")
    log "already running on 127.0.0.1:$port ($data)"
  else
    port=$(saved_port "$root/port")
    as_pg mkdir -p "$sock" 2>/dev/null || true
    as_pg tee "$data/testbed.conf" >/dev/null <<EOF
# Generated by scripts/testbed/postgres.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
fsync = off
full_page_writes = off
EOF
    log "starting PostgreSQL on 127.0.0.1:$port ($data)"
    if ! as_pg "$bin/pg_ctl" -D "$data" -l "$root/postgres.log" -w -t 60 start >/dev/null 8>&- 9>&-; then
      tail -20 "$root/postgres.log" >&2 || true
      die "PostgreSQL did not start (log: $root/postgres.log)"
    fi
  fi

  # The password user and its database (the password is hex: no quoting needed); over stdin,
  # so that it is not visible in the process list.
  if ! as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -d postgres >/dev/null <<EOF
SELECT 'CREATE ROLE $DB_USER LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER')\gexec
ALTER ROLE $DB_USER LOGIN PASSWORD '$password';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME')\gexec
EOF
  then
    die "could not create the database $DB_NAME and user $DB_USER"
  fi
  write_env "$bin" "postgresql://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
  log "PostgreSQL is up: postgresql://$DB_USER:***@127.0.0.1:$port/$DB_NAME (env: AUDIT_TEST_DATABASE_URL, PG_BIN)"
}

stop() {
  local root bin
  while read -r root; do
    [[ -n "$root" ]] || continue
    bin=$(cat "$root/bin" 2>/dev/null || true)
    [[ -x "$bin/pg_ctl" ]] || bin=$(find_bin) || { log "WARNING: no pg_ctl to stop $root/data"; continue; }
    if running "$bin" "$root/data"; then
      log "stopping PostgreSQL ($root/data)"
      as_pg "$bin/pg_ctl" -D "$root/data" -m fast -w -t 60 stop >/dev/null
    fi
  done < <(existing_roots)
}

destroy() {
  stop
  rm -rf "$TB/postgres" "$(fallback_root)" "$TB/postgres.env"
}

case "${1:-}" in
  install) install_pg ;;
  start) start ;;
  stop) stop ;;
  destroy) destroy ;;
  bin) find_bin || die "no PostgreSQL server binaries found" ;;
  *) echo "usage: $0 install|start|stop|destroy|bin" >&2; exit 2 ;;
esac
