#!/usr/bin/env bash
# Sextant's whole test suite, as CI runs it (.ci/run calls this):
#   1. rustfmt and clippy (warnings are errors);
#   2. every Rust test: unit, service HTTP tests (SQLite, and PostgreSQL when
#      SEXTANT_TEST_POSTGRES_URL is set), the OpenAPI drift checks, the end-to-end chain;
#   3. the contract tests: schemathesis against each service's OpenAPI document
#      (scripts/schemathesis.sh), and a type-check of the trainer's `cuda` feature;
#   4. the Salesforce package and Helm chart checks (.ci/sf-helm-checks.sh);
#   5. the admin console in a real browser (scripts/admin-browser-test.sh).
# Ends with one line "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
failed_steps=()
step() { local name=$1; shift; echo "=== $name"; if ! "$@"; then failed_steps+=("$name"); fi; }

step rustfmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
step cargo-test bash -o pipefail -c "cargo test --workspace --locked 2>&1 | tee '$log'"
# Contract tests: schemathesis (all checks) against each committed OpenAPI document, on the suite
# on loopback (the example builds from the test profile's artefacts).
step schemathesis bash -o pipefail -c "bash scripts/schemathesis.sh 2>&1 | tee -a '$log'"
# The `cuda` feature (burn-cuda 0.21) must keep compiling; no GPU is needed to type-check it.
step cuda-feature cargo check -p sextant-trainer --features cuda --locked
step salesforce-and-helm bash -o pipefail -c "bash .ci/sf-helm-checks.sh 2>&1 | tee -a '$log'"
# The admin console in a real browser (Playwright + Chromium) against the suite on loopback.
step admin-browser bash -o pipefail -c "bash scripts/admin-browser-test.sh 2>&1 | tee -a '$log'"

passed=$(grep -Eo '^test result: (ok|FAILED)\. [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: (ok|FAILED)\. [0-9]+ passed; [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
checks_passed=$(grep -Eo '^checks: [0-9]+ passed' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
checks_failed=$(grep -Eo '^checks: [0-9]+ passed, [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
rm -f "$log"
if [ ${#failed_steps[@]} -gt 0 ]; then
    echo "FAILED steps: ${failed_steps[*]}"
    failed=$((failed + checks_failed + ${#failed_steps[@]}))
else
    failed=$((failed + checks_failed))
fi
echo "tests: $((passed + checks_passed)) passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ]
