#!/usr/bin/env bash
# The Python package's tests, as scripts/test runs them: a virtual
# environment under target/ (made once, refreshed when pyproject.toml
# changes), the package installed with its test extras from PyPI, then
# mypy --strict and pytest against the real agenttrace-audit binary
# (AGENTTRACE_AUDIT_BIN, else target/debug/agenttrace-audit, built if
# missing). Without Python 3.10+ or PyPI this prints SKIPPED and passes,
# unless AUDIT_REQUIRE_SERVICES=1 (CI), where it fails.
set -uo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
venv="$repo/target/python-venv"

skip() {
    if [ "${AUDIT_REQUIRE_SERVICES:-0}" = 1 ]; then
        echo "python tests cannot run: $1 (AUDIT_REQUIRE_SERVICES=1)"
        exit 1
    fi
    echo "SKIPPED python tests: $1"
    exit 0
}

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    skip "no Python 3.10 or newer ($python)"
fi
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" || skip "cannot create a virtual environment"
    "$venv/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1
    if ! "$venv/bin/pip" install --quiet -e '.[test]'; then
        rm -rf "$venv"
        skip "cannot install the test dependencies from PyPI"
    fi
    touch "$stamp"
fi
"$venv/bin/mypy" || exit 1
"$venv/bin/pytest" -q -p no:cacheprovider
