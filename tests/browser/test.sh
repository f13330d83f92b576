#!/usr/bin/env bash
# The console's browser tests, as scripts/test runs them: playwright-core
# from npm (package-lock.json; installed into tests/browser/node_modules when
# missing or when the lock file changed), Debian's chromium
# ($CHROMIUM, else /usr/bin/chromium), and the real agenttrace-audit binary
# (AGENTTRACE_AUDIT_BIN, else target/debug/agenttrace-audit). Without
# Node.js 18+, npm or chromium this prints SKIPPED and passes, unless
# AUDIT_REQUIRE_SERVICES=1 (CI), where it fails.
set -uo pipefail
cd "$(dirname "$0")"

skip() {
    if [ "${AUDIT_REQUIRE_SERVICES:-0}" = 1 ]; then
        echo "browser tests cannot run: $1 (AUDIT_REQUIRE_SERVICES=1)"
        exit 1
    fi
    echo "SKIPPED browser tests: $1"
    exit 0
}

command -v node >/dev/null || skip "no Node.js (node)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || skip "Node.js is older than 18"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || skip "no chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"
stamp="node_modules/.installed-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    command -v npm >/dev/null || skip "no npm"
    rm -rf node_modules
    npm ci --no-audit --no-fund --loglevel=error || skip "cannot install playwright-core from npm"
    touch "$stamp"
fi
exec node run.mjs
