#!/usr/bin/env bash
# Regenerate the hash-pinned locks in requirements/ from pyproject.toml
# (run through `make lock`, which installs the pinned uv into .venv-lock):
#
#   runtime.txt  the runtime dependencies (the Dockerfile installs these)
#   dev.txt      runtime + the `dev` extra: test tools, ruff, mypy (make test)
#   lowest.txt   runtime dependencies at the lowest versions pyproject.toml
#                allows, test tools at dev.txt's versions (make test-lowest)
#
# Resolved for Python 3.11 (CI's, the image's, Debian 12's) with markers for
# every platform. The files name no index: pip installs them from whatever
# index it is configured with, the hashes decide.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
compile=(
  "$uv" pip compile pyproject.toml --quiet --no-config --universal
  --python-version 3.11 --generate-hashes --custom-compile-command "make lock"
)

"${compile[@]}" -o requirements/runtime.txt
"${compile[@]}" --extra dev -o requirements/dev.txt

# The lowest-direct resolution lowers every direct requirement, the test
# tools too; pin those (and their own dependencies) to the dev lock, so the
# job tests the runtime dependencies' lower bounds and nothing else.
pins() { grep -oE '^[A-Za-z0-9._-]+==[^ ;\\]+' "$1" | sort; }
tools=$(mktemp)
trap 'rm -f "$tools"' EXIT
comm -23 <(pins requirements/dev.txt) <(pins requirements/runtime.txt) >"$tools"
"${compile[@]}" --extra test --resolution lowest-direct --constraint "$tools" \
  -o requirements/lowest.txt
# uv names the constraint file in its annotations: name the lock it came from.
sed -i "s|-c $tools\$|-c requirements/dev.txt|" requirements/lowest.txt

# A lock names packages and hashes only, never where to download them.
if grep -n '://' requirements/*.txt; then
  echo "lock files must not contain URLs" >&2
  exit 1
fi
