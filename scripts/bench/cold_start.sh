#!/usr/bin/env bash
# Cold start of each service: seconds from starting the release binary (`sextant serve <service>`,
# what the image runs) to its first 200 on /healthz, and on /readyz where the service has one.
# Each service starts alone on a free loopback port with fresh state (an empty SQLite file, an
# empty model registry), RUNS times; the script prints every run and the median and maximum.
#
#   scripts/bench/cold_start.sh [--binary PATH] [--runs N] [--image]
#
# --binary: the sextant binary (default: target/release/sextant, built here when absent).
# --image:  also build the OCI image from that binary with scripts/build-image.sh (needs buildah)
#           and print the archive's size and the size of the binary and libraries inside it.
#
# The gateway's /readyz means "a model is loaded": started alone it has no trainer to load one
# from, so only its /healthz is timed here (its readiness after a model appears depends on
# model_refresh_secs, not on start-up). The admin console (`sextant serve admin`) has only
# /healthz: its panels report each upstream's state. Polling is every 5 ms with curl, which adds a
# few ms.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$REPO/target/release/sextant; RUNS=5; IMAGE=0
while [ $# -gt 0 ]; do
    case $1 in
        --binary) BIN=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --image) IMAGE=1; shift ;;
        *) echo "usage: $0 [--binary PATH] [--runs N] [--image]" >&2; exit 2 ;;
    esac
done
if [ ! -x "$BIN" ]; then
    echo "building the release binary (cargo build --release -p sextant --bin sextant)…" >&2
    (cd "$REPO" && cargo build --release --locked -p sextant --bin sextant)
fi
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is required (the connector needs a key file)" >&2; exit 1; }

WORK=$(mktemp -d); PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
openssl genrsa -out "$WORK/connected-app.key" 2048 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# wait_ok URL DEADLINE: polls until URL answers 200; prints the time it did, or fails.
wait_ok() {
    local url=$1 deadline=$2
    while :; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null)" = 200 ]; then now; return 0; fi
        kill -0 "$PID" 2>/dev/null || { echo "the service exited; its log:" >&2; cat "$WORK/log" >&2; return 1; }
        awk -v a="$(now)" -v b="$deadline" 'BEGIN {exit !(a > b)}' && { echo "no 200 from $url within the limit" >&2; return 1; }
        sleep 0.005
    done
}

# run SERVICE READY_PATH: one cold start; prints "healthz_seconds readyz_seconds|-".
run() {
    local svc=$1 ready=$2 port prefix state
    port=$(free_port); state=$WORK/state-$RANDOM; mkdir -p "$state"
    prefix=SEXTANT_$(echo "$svc" | tr 'a-z-' 'A-Z_')
    env -i PATH="$PATH" HOME="$state" RUST_LOG=warn \
        "${prefix}__HOST=127.0.0.1" "${prefix}__PORT=$port" \
        "${prefix}__INTERNAL_TOKEN=cold-start-internal-token-0123456789abcdef" \
        SEXTANT_FEATURE_STORE__DATABASE_URL="sqlite://$state/features.sqlite?mode=rwc" \
        SEXTANT_TRAINER__REGISTRY_DIR="$state/models" \
        SEXTANT_GATEWAY__AUTH__ISSUER=cold-start SEXTANT_GATEWAY__AUTH__AUDIENCE=sextant \
        SEXTANT_GATEWAY__AUTH__HS256_SECRET=0123456789abcdef0123456789abcdef \
        SEXTANT_CONNECTOR__SALESFORCE__LOGIN_URL=https://login.salesforce.com \
        SEXTANT_CONNECTOR__SALESFORCE__CLIENT_ID=cold-start SEXTANT_CONNECTOR__SALESFORCE__USERNAME=cold@start.example \
        SEXTANT_CONNECTOR__SALESFORCE__PRIVATE_KEY_PATH="$WORK/connected-app.key" \
        SEXTANT_ADMIN__ADMIN_TOKEN=cold-start-admin-token-0123456789 \
        "$BIN" serve "$svc" >"$WORK/log" 2>&1 &
    local t0; t0=$(now); PID=$!
    local deadline; deadline=$(awk -v t="$t0" 'BEGIN {printf "%.6f", t + 60}')
    local th tr=-
    th=$(wait_ok "http://127.0.0.1:$port/healthz" "$deadline") || return 1
    if [ -n "$ready" ]; then tr=$(wait_ok "http://127.0.0.1:$port$ready" "$deadline") || return 1; fi
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    awk -v t0="$t0" -v h="$th" -v r="$tr" 'BEGIN {printf "%.3f %s\n", h - t0, (r == "-") ? "-" : sprintf("%.3f", r - t0)}'
}

stats() {  # stats < numbers: "median max"
    sort -n | awk '{v[NR]=$1} END {if (NR==0) {print "- -"; exit} m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.3f %.3f\n", m, v[NR]}'
}

echo "binary: $BIN ($(du -h "$BIN" | cut -f1)), $RUNS runs per service, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-14s %-28s %-28s\n' service "healthz s (median / max)" "readyz s (median / max)"
for entry in connector: feature-store:/readyz trainer:/readyz gateway: admin:; do
    svc=${entry%%:*}; ready=${entry#*:}
    : >"$WORK/h"; : >"$WORK/r"
    for _ in $(seq "$RUNS"); do
        run "$svc" "$ready" >"$WORK/out" || { echo "$svc: failed" >&2; exit 1; }
        read -r h r <"$WORK/out"
        echo "$h" >>"$WORK/h"; [ "$r" != - ] && echo "$r" >>"$WORK/r"
        echo "  $svc run: healthz ${h}s readyz ${r}s" >&2
    done
    read -r hm hx < <(stats <"$WORK/h"); read -r rm rx < <(stats <"$WORK/r")
    printf '%-14s %-28s %-28s\n' "$svc" "$hm / $hx" "$([ -n "$ready" ] && echo "$rm / $rx" || echo "n/a")"
done

if [ "$IMAGE" = 1 ]; then
    command -v buildah >/dev/null || { echo "image: buildah is not installed" >&2; exit 1; }
    "$REPO/scripts/build-image.sh" --binary "$BIN" --output "$WORK/sextant.oci.tar" --check
    echo "image: OCI archive $(du -h "$WORK/sextant.oci.tar" | cut -f1) ($(stat -c %s "$WORK/sextant.oci.tar") bytes)"
fi
