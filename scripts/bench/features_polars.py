#!/usr/bin/env python3
"""The rfmt-v2 aggregates and the sparse 104-week sequences in Polars, for comparison with the
DataFusion engine (libs/feature-engine) on the same Parquet export in the same run.

Same definitions as libs/feature-engine/src/query.rs (the feature store's point-in-time rules):
latest version known before the cut-off, tombstones drop records, events dated before the cut-off,
purchase statuses case-insensitive, accounts alive as of the cut-off, categories from the products'
latest versions, sequences as the list of non-empty weeks (week 0 just before the cut-off).

usage: features_polars.py --data DIR --cutoff YYYY-MM-DD --lines N [--out FILE] [--org ORG]
                          [--purchase-statuses Activated,...] [--engine in-memory|streaming]
Prints one JSON object: engine, lines, accounts, seconds, lines_per_s, peak_rss_mib.
Needs polars (pip install polars).
"""

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time

try:
    import polars as pl
except ImportError:  # pragma: no cover
    sys.exit("features_polars.py needs polars: pip install polars")

DAY_US = 86_400_000_000
FEATURES = [
    "recency_days", "tenure_days", "frequency", "monetary_total", "monetary_mean",
    "orders_30d", "orders_90d", "orders_365d", "spend_30d", "spend_90d", "spend_365d",
    "ipt_mean_days", "ipt_std_days", "overdue_ratio", "single_purchase", "spend_trend_8w",
    "orders_trend_8w", "return_share_365d", "items_per_order", "category_count",
    "top_category_share", "cases_90d", "cases_365d", "negative_case_share_365d", "engagement_90d",
]


def scan(data, table):
    return pl.scan_parquet(os.path.join(data, table, "*.parquet"))


def current(data, table, org, k):
    """Latest version known before k of every record, tombstones dropped."""
    lf = scan(data, table).filter((pl.col("org_id") == org) & (pl.col("known_us") < k))
    return lf.filter(pl.col("known_us") == pl.col("known_us").max().over("id")).filter(
        ~pl.col("is_deleted")
    )


def build(data, org, cutoff, statuses):
    d = (cutoff - dt.date(1970, 1, 1)).days
    k = d * DAY_US
    c, lit = pl.col, pl.lit

    acc = scan(data, "fs_account").filter(c("org_id") == org)
    before = c("known_us") < k
    alive = (
        acc.with_columns(
            pl.when(before).then(0).otherwise(1).alias("_p"),
            pl.when(before).then(-c("known_us")).otherwise(c("known_us")).alias("_o"),
        )
        .sort(["id", "_p", "_o"])
        .group_by("id")
        .first()
        .filter(~c("is_deleted") & (c("event_day").is_null() | (c("event_day") < d)))
        .select("id")
    )

    live = (
        current(data, "fs_order", org, k)
        .filter((c("event_day") < d) & c("status").str.to_lowercase().is_in(statuses))
        .join(alive, left_on="account_id", right_on="id", how="semi")
        .select(c("id").alias("order_id"), "account_id", c("event_day").cast(pl.Int64).alias("day"))
    )
    cur = current(data, "fs_order_item", org, k).select(
        "order_id", "product_id", "quantity", "unit_price"
    )
    ll = cur.join(live.select("order_id", "account_id"), on="order_id", how="inner")
    q, p = c("quantity"), c("unit_price")
    la = ll.group_by("order_id").agg(
        pl.when(q > 0).then(q * p).otherwise(0.0).sum().alias("amount"),
        pl.when(q > 0).then(q).otherwise(0.0).sum().alias("items"),
        pl.when(q < 0).then(-q * p).otherwise(0.0).sum().alias("returned"),
    )
    of = live.join(la, on="order_id", how="left").with_columns(
        c("amount").fill_null(0.0), c("items").fill_null(0.0), c("returned").fill_null(0.0)
    )

    prod = scan(data, "fs_product").filter(c("org_id") == org)
    pc = (
        prod.filter(c("known_us") == c("known_us").max().over("id"))
        .filter(c("category").is_not_null())
        .select(c("id").alias("product_id"), "category")
    )
    cat = (
        ll.filter(q > 0)
        .join(pc, on="product_id", how="inner")
        .group_by("account_id", "category")
        .agg((q * p).sum().alias("spend"))
    )
    cs = cat.group_by("account_id").agg(
        (c("spend") > 0).sum().alias("n_cat"),
        c("spend").max().alias("top_spend"),
        c("spend").sum().alias("cat_total"),
    )

    age = lit(d) - c("day")
    amt = c("amount")

    def cnt(cond):
        return pl.when(cond).then(1).otherwise(0).sum()

    def spend(cond, col=amt):
        return pl.when(cond).then(col).otherwise(0.0).sum()

    span, span2 = 56, 112
    agg = of.group_by("account_id").agg(
        c("day").min().alias("first_day"),
        c("day").max().alias("last_day"),
        pl.len().alias("n"),
        amt.sum().alias("total"),
        c("items").sum().alias("items"),
        cnt(age <= 30).alias("o30"),
        cnt(age <= 90).alias("o90"),
        cnt(age <= 365).alias("o365"),
        spend(age <= 30).alias("s30"),
        spend(age <= 90).alias("s90"),
        spend(age <= 365).alias("s365"),
        spend(age <= 365, c("returned")).alias("r365"),
        spend(age <= span).alias("rs"),
        spend((age > span) & (age <= span2)).alias("ps"),
        cnt(age <= span).alias("ro"),
        cnt((age > span) & (age <= span2)).alias("po"),
    )
    ipt = (
        of.select("account_id", "day")
        .unique()
        .sort("account_id", "day")
        .with_columns((c("day") - c("day").shift(1).over("account_id")).alias("gap"))
        .group_by("account_id")
        .agg(
            c("gap").count().alias("ng"),
            c("gap").sum().alias("sg"),
            (c("gap") * c("gap")).sum().alias("sg2"),
        )
    )
    cv = (
        current(data, "fs_case", org, k)
        .filter((c("event_day") < d) & c("account_id").is_not_null())
        .select(
            "account_id",
            c("event_day").cast(pl.Int64).alias("day"),
            c("negative").fill_null(False).alias("neg"),
        )
    )
    ca = cv.group_by("account_id").agg(
        cnt(age <= 90).alias("c90"),
        cnt(age <= 365).alias("c365"),
        cnt((age <= 365) & c("neg")).alias("n365"),
    )
    ea = (
        current(data, "fs_engagement_event", org, k)
        .filter(
            (c("event_day") < d) & (lit(d) - c("event_day") <= 90) & c("account_id").is_not_null()
        )
        .group_by("account_id")
        .agg(pl.len().alias("e90"))
    )
    week = ((lit(d) - c("day") - 1) // 7).cast(pl.Int32).alias("week")
    wk = pl.concat(
        [
            of.filter(age <= 728).select(
                "account_id", week, lit(1.0).alias("orders"), c("amount").alias("spend"),
                "items", lit(0.0).alias("cases"),
            ),
            cv.filter(age <= 728).select(
                "account_id", week, lit(0.0).alias("orders"), lit(0.0).alias("spend"),
                lit(0.0).alias("items"), lit(1.0).alias("cases"),
            ),
        ]
    )
    seq = (
        wk.group_by("account_id", "week")
        .agg(c("orders").sum(), c("spend").sum(), c("items").sum(), c("cases").sum())
        .sort("account_id", "week")
        .group_by("account_id")
        .agg(pl.struct("week", "orders", "spend", "items", "cases").alias("sequence"))
    )

    f64 = pl.Float64
    mean_gap = c("sg").cast(f64) / c("ng").cast(f64)
    has_gaps = c("ng").fill_null(0) > 0
    rs = pl.when(c("rs") > 0).then(c("rs")).otherwise(0.0)
    ps = pl.when(c("ps") > 0).then(c("ps")).otherwise(0.0)
    out = (
        agg.join(ipt, on="account_id", how="left")
        .join(cs, on="account_id", how="left")
        .join(ca, on="account_id", how="left")
        .join(ea, on="account_id", how="left")
        .join(seq, on="account_id", how="left")
        .select(
            "account_id",
            (lit(d) - c("last_day")).cast(f64).alias("recency_days"),
            (lit(d) - c("first_day")).cast(f64).alias("tenure_days"),
            c("n").cast(f64).alias("frequency"),
            c("total").alias("monetary_total"),
            (c("total") / c("n").cast(f64)).alias("monetary_mean"),
            c("o30").cast(f64).alias("orders_30d"),
            c("o90").cast(f64).alias("orders_90d"),
            c("o365").cast(f64).alias("orders_365d"),
            c("s30").alias("spend_30d"),
            c("s90").alias("spend_90d"),
            c("s365").alias("spend_365d"),
            pl.when(has_gaps).then(mean_gap).otherwise(0.0).alias("ipt_mean_days"),
            pl.when(has_gaps)
            .then(
                ((c("ng") * c("sg2") - c("sg") * c("sg")).cast(f64) / (c("ng") * c("ng")).cast(f64)).sqrt()
            )
            .otherwise(0.0)
            .alias("ipt_std_days"),
            pl.when(has_gaps)
            .then((lit(d) - c("last_day")).cast(f64) / pl.max_horizontal(mean_gap, lit(1.0)))
            .otherwise(0.0)
            .alias("overdue_ratio"),
            pl.when(has_gaps).then(0.0).otherwise(1.0).alias("single_purchase"),
            ((rs + 1.0) / (ps + 1.0)).log().alias("spend_trend_8w"),
            (c("ro") - c("po")).cast(f64).alias("orders_trend_8w"),
            pl.when(c("s365") + c("r365") > 0)
            .then(c("r365") / (c("s365") + c("r365")))
            .otherwise(0.0)
            .alias("return_share_365d"),
            (c("items") / c("n").cast(f64)).alias("items_per_order"),
            c("n_cat").fill_null(0).cast(f64).alias("category_count"),
            pl.when(c("cat_total") > 0)
            .then(c("top_spend") / c("cat_total"))
            .otherwise(0.0)
            .alias("top_category_share"),
            c("c90").fill_null(0).cast(f64).alias("cases_90d"),
            c("c365").fill_null(0).cast(f64).alias("cases_365d"),
            pl.when(c("c365").fill_null(0) > 0)
            .then(c("n365").cast(f64) / c("c365").cast(f64))
            .otherwise(0.0)
            .alias("negative_case_share_365d"),
            c("e90").fill_null(0).cast(f64).alias("engagement_90d"),
            "sequence",
        )
    )
    return out


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cutoff", required=True, type=dt.date.fromisoformat)
    ap.add_argument("--lines", required=True, type=int, help="order lines in the data set")
    ap.add_argument("--out", default=None, help="result Parquet file")
    ap.add_argument("--org", default="default")
    ap.add_argument("--purchase-statuses", default="Activated")
    ap.add_argument("--engine", default="in-memory", choices=["in-memory", "streaming"])
    a = ap.parse_args()
    statuses = [s.strip().lower() for s in a.purchase_statuses.split(",") if s.strip()]
    if not statuses:
        sys.exit("--purchase-statuses must name at least one status")
    for t in ["fs_account", "fs_product", "fs_order", "fs_order_item", "fs_case", "fs_engagement_event"]:
        if not os.path.isdir(os.path.join(a.data, t)):
            sys.exit(f"{t} not found under {a.data}")
    out = a.out or os.path.join(a.data, "features-polars.parquet")
    started = time.perf_counter()
    lf = build(a.data, a.org, a.cutoff, statuses)
    df = lf.collect(engine=a.engine)
    df.write_parquet(out)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "engine": f"polars {pl.__version__} ({a.engine})",
                "lines": a.lines,
                "accounts": df.height,
                "seconds": round(seconds, 3),
                "lines_per_s": round(a.lines / seconds),
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "threads": pl.thread_pool_size(),
                "out": out,
            }
        )
    )


if __name__ == "__main__":
    main()
