#!/usr/bin/env bash
# Feature build throughput and peak memory: the DataFusion engine (libs/feature-engine) next to the
# same RFM + weekly-sequence computation in Polars, on the same generated Parquet export, in the
# same run, on the same machine.
#
# usage: scripts/bench/features_engine.sh [LINES] [DATA_DIR]
#   LINES     order lines to generate (default 10000000)
#   DATA_DIR  where the export goes (default target/engine-bench/LINES; reused when present)
# env: CUTOFF (default 2024-01-01), POLARS_ENGINES (default "in-memory streaming"),
#      PYTHON (default python3; e.g. a venv's python with polars installed)
#
# Steps: generate the export (release `sextant-engine generate`, seed 42, separate process), run
# `cargo bench --bench features` (DataFusion single-node, peak RSS = VmHWM of the computation),
# run scripts/bench/features_polars.py once per Polars engine (peak RSS = ru_maxrss of the
# process, which includes the interpreter), check that Polars and DataFusion produced the same
# rows, and print a side-by-side table. Needs Python 3 with polars (pip install polars).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LINES=${1:-10000000}
DATA=${2:-$REPO/target/engine-bench/$LINES}
CUTOFF=${CUTOFF:-2024-01-01}
POLARS_ENGINES=${POLARS_ENGINES:-in-memory streaming}
PYTHON=${PYTHON:-python3}
cd "$REPO"

"$PYTHON" -c 'import polars' 2>/dev/null || { echo "features_engine: needs polars (pip install polars)" >&2; exit 2; }

echo "== building (release)" >&2
cargo build --release -q -p sextant-feature-engine --bin sextant-engine
cargo bench -q -p sextant-feature-engine --bench features --no-run
TARGET=${CARGO_TARGET_DIR:-$REPO/target}

if [ ! -d "$DATA/fs_order_item" ]; then
    echo "== generating $LINES order lines under $DATA" >&2
    "$TARGET/release/sextant-engine" generate --lines "$LINES" --out "$DATA" --seed 42 >&2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "== DataFusion" >&2
cargo bench -q -p sextant-feature-engine --bench features -- "$LINES" "$DATA" --cutoff "$CUTOFF" | tail -n 1 | tee -a "$results" >&2
for engine in $POLARS_ENGINES; do
    echo "== Polars ($engine)" >&2
    "$PYTHON" scripts/bench/features_polars.py --data "$DATA" --cutoff "$CUTOFF" --lines "$LINES" \
        --engine "$engine" --out "$DATA/features-polars-$engine.parquet" | tee -a "$results" >&2
done

"$PYTHON" - "$results" "$DATA" <<'EOF'
import json, sys
import polars as pl
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
data = sys.argv[2]
# Same answer: every Polars result against DataFusion's (features within 1e-9 relative, sequences equal).
df = pl.read_parquet(f"{data}/features-datafusion.parquet").sort("account_id")
for r in rows[1:]:
    po = pl.read_parquet(r["out"]).sort("account_id")
    assert df.height == po.height, f"{r['engine']}: {po.height} rows vs {df.height}"
    assert df["account_id"].equals(po["account_id"]), f"{r['engine']}: different accounts"
    for col in df.columns[1:-1]:
        a, b = df[col], po[col]
        scale = pl.DataFrame({"a": a.abs(), "b": b.abs()}).select(pl.max_horizontal("a", "b", pl.lit(1.0))).to_series()
        diff = ((a - b).abs() / scale).max()
        assert diff <= 1e-9, f"{r['engine']}: {col} differs by {diff}"
    # Sequences: the same non-empty weeks in the same order, the same values.
    def weeks(t):
        return (
            t.select("account_id", "sequence")
            .explode("sequence")
            .drop_nulls("sequence")
            .with_columns(pl.int_range(pl.len()).over("account_id").alias("pos"))
            .unnest("sequence")
        )
    a, b = weeks(df), weeks(po)
    assert a.height == b.height, f"{r['engine']}: {b.height} non-empty weeks vs {a.height}"
    assert a["account_id"].equals(b["account_id"]) and a["pos"].equals(b["pos"]), f"{r['engine']}: weeks differ"
    assert (a["week"].cast(pl.Int64) == b["week"].cast(pl.Int64)).all(), f"{r['engine']}: week numbers differ"
    for ch in ["orders", "spend", "items", "cases"]:
        diff = pl.DataFrame({"x": a[ch], "y": b[ch]}).select(
            ((pl.col("x") - pl.col("y")).abs()
             / pl.max_horizontal(pl.col("x").abs(), pl.col("y").abs(), pl.lit(1.0))).max()
        ).item()
        assert diff is None or diff <= 1e-9, f"{r['engine']}: sequence {ch} differs by {diff}"
    r["same_result"] = True
print()
print(f"{'engine':38} {'lines':>12} {'accounts':>9} {'seconds':>9} {'lines/s':>12} {'peak RSS MiB':>13}")
for r in rows:
    print(f"{r['engine']:38} {r['lines']:>12,} {r['accounts']:>9,} {r['seconds']:>9.2f} {r['lines_per_s']:>12,} {r['peak_rss_mib']:>13,.0f}")
base = rows[0]["lines_per_s"]
for r in rows[1:]:
    print(f"DataFusion / {r['engine']}: {base / r['lines_per_s']:.2f}x the throughput; results identical: {r.get('same_result', False)}")
EOF
