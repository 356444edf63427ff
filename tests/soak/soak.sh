#!/bin/sh
# credd's soak test (not part of `cargo xtask test`): builds credd, then runs
# tests/soak/soak.py with the test virtualenv's Python (botocore parses the
# files). Usage: tests/soak/soak.sh [--seconds N] [--seed S] [--keep] ...
# See tests/soak/README.md (what it checks) and tests/soak/soak.py's header.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${CREDD_TEST_PYTHON:-$repo/.venv/bin/python}
if [ -z "${CREDD_BIN:-}" ]; then
    (cd "$repo" && cargo build -q -p credd)
    CREDD_BIN=$repo/target/debug/credd
    export CREDD_BIN
fi
exec "$python" "$repo/tests/soak/soak.py" --python "$python" "$@"
