#!/usr/bin/env bash
# The gateway load benchmark with its FastAPI + PyTorch peer side by side
# (services/gateway/benches/load.rs --peer). Creates the peer's virtual environment on first use
# (PEER_VENV, default target/bench-peer-venv): torch from PyTorch's CPU wheel index when it is
# reachable, else from PyPI (larger: it brings CUDA libraries, unused here).
# Usage: scripts/bench/gateway_vs_python.sh [--seconds 10] [--rps 2000] [--concurrency 32]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${PEER_VENV:-target/bench-peer-venv}
requirements=services/gateway/benches/peer/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import fastapi, torch, jwt, httpx, uvicorn' 2>/dev/null; then
  echo "setting up the peer's Python in $venv (once)" >&2
  python3 -m venv "$venv"
  torch=$(grep -E '^torch==' "$requirements")
  "$venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu "$torch" \
    || echo "PyTorch's CPU index is not reachable: torch comes from PyPI" >&2
  "$venv/bin/pip" install --quiet -r "$requirements"
fi
exec cargo bench -p sextant-gateway --bench load -- --peer "$venv/bin/python" "$@"
