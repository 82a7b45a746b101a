#!/usr/bin/env bash
# The admin console tested in a real browser: starts the suite on loopback with the console in
# front (`sextant-admin`'s example `admin_suite`: org simulator, four services, demo sync and two
# trained models), then runs services/admin/browser/console.test.mjs — Playwright
# (playwright-core from npm) driving Debian's Chromium — against it. Screenshots go to
# $SCREENSHOT_DIR (default target/admin-screenshots) and are checked by the test.
#
#   scripts/admin-browser-test.sh [--release]
#
# Ends with "checks: N passed, N failed" (scripts/test.sh counts it); exit 1 on any failure.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd); cd "$REPO"
PROFILE=(); [ "${1:-}" = --release ] && PROFILE=(--release)
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$REPO/target/admin-screenshots}
BROWSER_DIR=$REPO/services/admin/browser
fail() { echo "admin-browser: $*"; echo "checks: 0 passed, 1 failed"; exit 1; }
[ -n "$CHROMIUM" ] || fail "Chromium is not installed (apt-get install chromium; .ci/run does)"
command -v node >/dev/null || fail "node is not installed"

(cd "$BROWSER_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || fail "npm ci failed"
cargo build "${PROFILE[@]}" --locked -p sextant-admin --example admin_suite || fail "building the example failed"
dir=target/debug; [ ${#PROFILE[@]} -gt 0 ] && dir=target/release
[ -n "${CARGO_TARGET_DIR:-}" ] && dir=$CARGO_TARGET_DIR/${dir#target/}

work=$(mktemp -d); mkdir -p "$SCREENSHOT_DIR"
mkfifo "$work/stdin"
# The example serves until its standard input closes: hold the fifo open, close it to stop.
"$dir/examples/admin_suite" <"$work/stdin" >"$work/out" 2>"$work/log" &
pid=$!
exec 3>"$work/stdin"
cleanup() { exec 3>&-; wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 1200); do   # sync and two trainings: minutes in a debug build on 2 cores
    [ -s "$work/out" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -40 "$work/log"; fail "the suite exited before it was ready"; }
    sleep 1
done
[ -s "$work/out" ] || { tail -40 "$work/log"; fail "the suite was not ready within 20 minutes"; }
read -r ADMIN_URL ADMIN_TOKEN < <(python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(d["admin_url"], d["admin_token"])' <"$work/out")
echo "admin-browser: console at $ADMIN_URL, Chromium $("$CHROMIUM" --version 2>/dev/null | grep -Eo '[0-9]+(\.[0-9]+)+' | head -1)"

out=$(ADMIN_URL=$ADMIN_URL ADMIN_TOKEN=$ADMIN_TOKEN CHROMIUM=$CHROMIUM \
    node --test --test-reporter=spec "$BROWSER_DIR/console.test.mjs" 2>&1); rc=$?
echo "$out"
passed=$(grep -Eo '^ℹ pass [0-9]+' <<<"$out" | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '^ℹ fail [0-9]+' <<<"$out" | grep -Eo '[0-9]+' || echo 0)
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "admin-browser: screenshots in $SCREENSHOT_DIR: $(ls "$SCREENSHOT_DIR" 2>/dev/null | tr '\n' ' ')"
echo "checks: $passed passed, $failed failed"
[ "$rc" -eq 0 ]
