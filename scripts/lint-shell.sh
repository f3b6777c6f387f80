#!/usr/bin/env bash
# Runs shellcheck over every shell script of the repository: *.sh, .ci/run and every other
# file whose first line is a sh/bash shebang (gen/, node_modules/ and local state aside).
# Settings: .shellcheckrc (sourced files are followed, found beside the script).
# The shellcheck binary comes from Debian's `shellcheck` package, installed with apt-get when missing
# (needs root, as on CI); SHELLCHECK=/path/to/shellcheck uses another one.
# Use:  bash scripts/lint-shell.sh [files...]   (default: all of them)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { printf 'lint-shell: %s\n' "$*" >&2; exit 2; }

shellcheck=${SHELLCHECK:-shellcheck}
if ! command -v "$shellcheck" >/dev/null; then
  [[ -z "${SHELLCHECK:-}" ]] || die "SHELLCHECK=$SHELLCHECK is not an executable"
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    die "shellcheck is not installed (Debian: apt-get install shellcheck); installing it automatically needs root and apt-get"
  fi
  echo "lint-shell: installing Debian's shellcheck package (apt-get)" >&2
  out=$(mktemp)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends shellcheck; } >"$out" 2>&1; then
    tail -30 "$out" >&2
    rm -f "$out"
    die "apt-get install shellcheck failed"
  fi
  rm -f "$out"
fi

# is_shell <file>: named *.sh, or a sh/bash shebang on its first line.
is_shell() {
  [[ "$1" == *.sh ]] && return 0
  local first
  IFS= read -r first <"$1" 2>/dev/null || return 1
  [[ "$first" =~ ^\#!(/usr)?/bin/(env[[:space:]]+)?(ba)?sh([[:space:]]|$) ]]
}

files=("$@")
if ((${#files[@]} == 0)); then
  while IFS= read -r -d '' f; do
    if is_shell "$f"; then files+=("${f#./}"); fi
  done < <(find . \( -path ./.git -o -path ./node_modules -o -path ./gen -o -path ./.testbed -o -path ./coverage \) -prune \
    -o -type f -print0 | sort -z)
fi
((${#files[@]})) || die "no shell scripts found"

echo "lint-shell: shellcheck $("$shellcheck" --version | sed -n 's/^version: //p') on ${#files[@]} scripts" >&2
if "$shellcheck" "${files[@]}"; then
  echo "lint-shell: no findings" >&2
else
  rc=$?
  echo "lint-shell: shellcheck reported findings (exit $rc)" >&2
  exit "$rc"
fi
