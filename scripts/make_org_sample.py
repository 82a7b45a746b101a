#!/usr/bin/env python3
"""Builds the small real-data sample that the org simulator ships with.

Run once by a developer (not by CI):
    python3 scripts/make_org_sample.py ../shared/datasets libs/org-sim/data

- Online Retail (UCI, CC BY 4.0): the clean invoice lines (CustomerID present, InvoiceNo not a
  cancellation, Quantity > 0, UnitPrice > 0, product StockCodes only) of every 16th customer in
  CustomerID order, columns and formats unchanged, gzip -n -9.
- VADER Amazon review snippets (MIT): every 25th snippet, used as support-case descriptions.
"""
import csv, gzip, io, pathlib, sys

NON_PRODUCT = {"POST", "D", "M", "m", "DOT", "BANK CHARGES", "C2", "CRUK", "PADS", "AMAZONFEE", "S", "B"}
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)

with gzip.open(src / "online_retail/online_retail.csv.gz", "rt", encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f))
header, body = rows[0], rows[1:]
def clean(r):
    inv, code, _d, qty, _t, price, cust, _c = r
    return cust and not inv.startswith(("C", "A")) and int(qty) > 0 and float(price) > 0 \
        and code not in NON_PRODUCT and not code.startswith("gift_")
body = [r for r in body if clean(r)]
customers = sorted({r[6] for r in body}, key=int)
chosen = set(customers[::16])
out = [r for r in body if r[6] in chosen]
buf = io.StringIO()
w = csv.writer(buf, lineterminator="\n")
w.writerow(header)
w.writerows(out)
with open(dst / "online_retail_sample.csv.gz", "wb") as raw:
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
print(f"online retail: {len(chosen)} customers, {len(out)} lines")

lines = (src / "vader_amazon_reviews/amazonReviewSnippets_GroundTruth.txt").read_text(encoding="utf-8").splitlines()
snips = [l for l in lines if l.strip()][::25]
(dst / "case_snippets.tsv").write_text("\n".join(snips) + "\n", encoding="utf-8")
print(f"case snippets: {len(snips)}")
