#!/usr/bin/env bash
# Contract tests: schemathesis (pinned, in a venv) runs every check it has against each committed
# OpenAPI document in openapi/, with the services running on loopback (`sextant`'s example
# `schemathesis_suite`: org simulator, SQLite feature store, an empty model registry). Any
# constraint the server enforces but the document does not declare (or the reverse), any status
# code it answers but does not declare, a 5xx, a missing 405 — schemathesis reports it here.
#
#   scripts/schemathesis.sh [SERVICE...]     (default: connector feature-store trainer gateway)
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 20 per operation), SCHEMATHESIS_SEED (default 1:
# the same seed generates the same cases), SCHEMATHESIS_VENV (default target/schemathesis-venv),
# CARGO_TARGET_DIR (where the example is built, as cargo uses it).
# Reports (JUnit and the failing cases as pytest files) go to target/schemathesis/<service>/.
#
# Every check schemathesis has runs (its default, the same set as `--checks all`; the flag itself
# is not passed because it would override the per-operation exceptions in scripts/schemathesis.toml).
# One check per service; ends with "checks: N passed, N failed" (scripts/test.sh counts it) and
# exits 1 on any failure.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd); cd "$REPO"
VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$REPO/target/schemathesis-venv}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}
SEED=${SCHEMATHESIS_SEED:-1}
REPORTS=$REPO/target/schemathesis
SERVICES=("$@"); [ ${#SERVICES[@]} -eq 0 ] && SERVICES=(connector feature-store trainer gateway)
fail() { echo "schemathesis: $*"; echo "checks: 0 passed, ${#SERVICES[@]} failed"; exit 1; }
started=$SECONDS

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $VERSION" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || fail "python3 -m venv failed (python3-venv is needed)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" \
        || fail "installing schemathesis $VERSION failed"
fi
cargo build --locked --workspace --example schemathesis_suite || fail "building the example failed"
dir=${CARGO_TARGET_DIR:-target}/debug
echo "schemathesis: $("$VENV/bin/schemathesis" --version), ready in $((SECONDS - started)) s"

# Valid Salesforce ids (checksummed) for the documents' `salesforce-id` format.
export PYTHONPATH=$REPO/scripts${PYTHONPATH:+:$PYTHONPATH}
export SCHEMATHESIS_HOOKS=schemathesis_hooks

work=$(mktemp -d)
mkfifo "$work/stdin"
# The example serves until its standard input closes: hold the fifo open, close it to stop.
"$dir/examples/schemathesis_suite" <"$work/stdin" >"$work/out" 2>"$work/log" &
pid=$!
exec 3>"$work/stdin"
cleanup() { exec 3>&-; wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 120); do
    [ -s "$work/out" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -40 "$work/log"; fail "the suite exited before it was ready"; }
    sleep 0.5
done
[ -s "$work/out" ] || { tail -40 "$work/log"; fail "the suite was not ready within a minute"; }
# url and token per service, one per line: "service url token"
targets=$(python3 -c '
import json, sys
d = json.loads(sys.stdin.readline())
u = d["urls"]
print("connector", u["connector"], d["internal_token"])
print("feature-store", u["feature_store"], d["internal_token"])
print("trainer", u["trainer"], d["internal_token"])
print("gateway", u["gateway"], d["gateway_token"])
' <"$work/out") || fail "the suite printed no URLs"

passed=0; failed=0; summary=()
for service in "${SERVICES[@]}"; do
    read -r _ url token < <(grep "^$service " <<<"$targets") \
        || { failed=$((failed + 1)); summary+=("$service: unknown service"); continue; }
    echo "=== schemathesis $service at $url"
    t0=$SECONDS
    rm -rf "${REPORTS:?}/$service"; mkdir -p "$REPORTS/$service"
    "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "openapi/$service.json" \
        --url "$url" \
        --header "Authorization: Bearer $token" \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --generation-database none \
        --workers 2 \
        --request-timeout 30 \
        --no-color \
        --report junit,pytest --report-dir "$REPORTS/$service" \
        2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1)); summary+=("$service: passed in $((SECONDS - t0)) s")
    else
        failed=$((failed + 1)); summary+=("$service: FAILED (exit $rc) in $((SECONDS - t0)) s")
    fi
done
kill -0 "$pid" 2>/dev/null || { echo "schemathesis: the suite died during the run:"; tail -40 "$work/log"; }

for line in "${summary[@]}"; do echo "schemathesis: $line"; done
echo "schemathesis: $((SECONDS - started)) s in all"
echo "checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
