#!/usr/bin/env bash
# `npm run lint`: ESLint (eslint.config.js), Prettier's check (.prettierrc.json; `npm run format`
# applies it) and shellcheck (scripts/lint-shell.sh). Runs all three and fails when any fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
node_bin=$(bash scripts/node24.sh) || exit 2
export PATH="$PWD/node_modules/.bin:$node_bin:$PATH"

failed=()
echo "lint: eslint" >&2
eslint --max-warnings 0 . || failed+=(eslint)
echo "lint: prettier --check" >&2
# The same files as `npm run format`: the TypeScript/JavaScript (.prettierignore) and the fake helm.
prettier --check --log-level warn . test/fixtures/bin/helm || failed+=("prettier (run: npm run format)")
bash scripts/lint-shell.sh || failed+=(shellcheck)

if ((${#failed[@]})); then
  printf 'lint: failed: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "lint: clean" >&2
