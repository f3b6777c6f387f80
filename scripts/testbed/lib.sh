# Shared by the testbed scripts (up.sh, down.sh, postgres.sh); sourced, never run.
# Before sourcing, a script sets LOG_TAG (its log lines' tag) and may set T_START (then every
# log line shows the seconds since then).
# shellcheck shell=bash

TESTBED_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$TESTBED_SCRIPTS/../.." && pwd)
TB="$REPO/.testbed"
CLUSTER=paas-testbed
KWOK_DIR="$TB/kwok"
CLUSTER_DIR="$KWOK_DIR/clusters/$CLUSTER"

# ---------------------------------------------------------------- logging

elapsed() { echo "$(($(date +%s) - T_START))s"; }

log() { # log <message...>: one line on stderr
  if [[ -n "${T_START:-}" ]]; then
    printf '[%s %4s] %s\n' "$LOG_TAG" "$(elapsed)" "$*" >&2
  else
    printf '[%s] %s\n' "$LOG_TAG" "$*" >&2
  fi
}

die() { # die <message...>: log it as an error and exit 1
  log "ERROR: $*"
  exit 1
}

# ---------------------------------------------------------------- processes

pid_matches() { # pid_matches <pid> <cmdline-substring>: a live process whose command line holds it
  [[ "$1" =~ ^[0-9]+$ && -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

pid_alive() { # pid_alive <pidfile> <cmdline-substring>: the pid file names such a process
  [[ -s "$1" ]] || return 1
  pid_matches "$(<"$1")" "$2"
}

stop_pid() { # stop_pid <pid> <cmdline-substring> <label>: SIGTERM, up to 10 s, then SIGKILL
  local pid=$1 want=$2 label=$3 _
  pid_matches "$pid" "$want" || return 0
  log "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    pid_matches "$pid" "$want" || return 0
    sleep 0.2
  done
  log "$label (pid $pid) still running after 10s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_pidfile() { # stop_pidfile <pidfile> <cmdline-substring> <label>: stop_pid, then remove the file
  if [[ -s "$1" ]]; then stop_pid "$(<"$1")" "$2" "$3"; fi
  rm -f "$1"
}

# Drops the kwok components' pid files that do not name a live process of that component
# (after a reboot a pid may belong to an unrelated process, which kwokctl would otherwise kill).
clean_stale_pidfiles() {
  local f
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    pid_alive "$f" "$CLUSTER_DIR/bin/$(basename "$f" .pid)" || rm -f "$f"
  done
}

unset_kwok_env() { # kwokctl reads KWOK_* variables: none of the caller's may leak in
  local v
  while read -r v; do unset "$v"; done < <(compgen -e | grep '^KWOK_' || true)
}

# ---------------------------------------------------------------- ports (127.0.0.1)

free_port() { # a port nothing listens on now
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_free() { # port_free <port>: nothing listens on 127.0.0.1:<port>
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

wait_port_free() { # wait_port_free <port>: up to 10 s (a process that is still shutting down)
  local _
  for _ in $(seq 1 20); do
    port_free "$1" && return 0
    sleep 0.5
  done
  return 1
}

# saved_port <file>: the port kept in <file> (so URLs handed out stay valid) when it is free
# again within 10 s, else a free one, which is kept in <file>; prints it.
saved_port() {
  local f=$1 p
  if [[ -s "$f" ]]; then
    p=$(<"$f")
    if wait_port_free "$p"; then
      echo "$p"
      return
    fi
  fi
  p=$(free_port)
  echo "$p" >"$f"
  echo "$p"
}

# ---------------------------------------------------------------- templates

# render <template> [NAME=value...]: prints the template with every ${NAME} of the given names
# replaced by its value (literally: no other expansion; names not given stay as they are).
render() {
  local text pair
  text=$(<"$1") || return 1
  shift
  for pair in "$@"; do
    text=${text//"\${${pair%%=*}}"/"${pair#*=}"}
  done
  printf '%s\n' "$text"
}
