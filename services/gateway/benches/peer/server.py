"""The gateway's churn scoring written the usual Python way: FastAPI + PyTorch.

The peer of the gateway load benchmark (`cargo bench -p sextant-gateway --bench load -- --peer
PYTHON`): it serves `POST /v1/scores` for the same model (the artefact the trainer serves, loaded
into `torch.nn.GRU` and `torch.nn.Linear` layers) from the same feature store, with the same work
per record: the JWT check, the feature-store call, the churn score, the band, occlusion over every
feature and block of weeks for the top three factors, the next best action's code, and the
prediction log (batched, off the request path). Factor texts are left out.

It is written as a competent Python service would be, not as a straw man: one batched forward
pass per request, the GRU run once per distinct sequence (feature occlusions reuse the customer's
final state, only block-of-weeks variants rerun the GRU), `torch.inference_mode`, one torch
thread per worker, uvicorn with uvloop and httptools, `orjson` responses, a pooled HTTP client.

Run: `python server.py --port P --store URL --trainer URL --secret S --workers 2`.
"""

import argparse
import asyncio
import math
import os
import re
from datetime import datetime, timezone

import httpx
import jwt
import numpy as np
import orjson
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

ID = re.compile(r"^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$")
MAX_RECORDS = 200
TOP_FACTORS = 3
MIN_IMPACT = 1e-3

FAMILIES = {
    **dict.fromkeys(
        ["recency_days", "overdue_ratio", "orders_30d", "orders_90d", "orders_365d",
         "orders_trend_8w", "ipt_mean_days", "ipt_std_days"], "lapsing"),
    **dict.fromkeys(
        ["spend_trend_8w", "spend_30d", "spend_90d", "spend_365d", "monetary_total",
         "monetary_mean", "items_per_order", "category_count", "top_category_share"], "spend"),
    **dict.fromkeys(["cases_90d", "cases_365d", "negative_case_share_365d"], "support"),
    "return_share_365d": "returns",
    **dict.fromkeys(["single_purchase", "frequency", "tenure_days"], "new"),
    "engagement_90d": "engagement",
}


def family(name):
    if name.startswith("weeks_"):
        return "lapsing"
    return FAMILIES.get(name, "other")


def action_code(band, top):
    """The churn model's rule table (sextant_models::churn_serving::next_best_action)."""
    fam = family(top) if top else "other"
    if band == "low":
        return "keep_cadence"
    if fam == "support":
        return "escalate_cases" if band == "high" else "follow_up_cases"
    if fam == "returns":
        return "review_returns"
    if fam == "new":
        return "second_order_offer"
    if band == "medium":
        return {"lapsing": "win_back_offer", "spend": "loyalty_offer",
                "engagement": "invite_engagement"}.get(fam, "nurture")
    return "retention_call"


def linear(d):
    layer = torch.nn.Linear(d["inputs"], d["outputs"])
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(d["weights"]).view(d["inputs"], d["outputs"]).T)
        layer.bias.copy_(torch.tensor(d["bias"]))
    return layer


class Model:
    """The served sequence churn model (`SequenceChurnArtifact`) in PyTorch."""

    def __init__(self, art):
        net = art["network"]
        self.version = art["version"]
        self.art = art
        self.feature_names = art["feature_names"]
        self.signed = art["signed_features"]
        self.bands = art["bands"]
        self.category_attribute = art["category_attribute"]
        self.typical = torch.tensor(art["reference"]["feature_typical"], dtype=torch.float64)
        self.blocks = art["reference"]["week_blocks"]
        self.weeks = net["weeks"]
        c, hd = net["gru"]["inputs"], net["gru"]["hidden"]
        self.gru = torch.nn.GRU(c, hd, batch_first=True)
        g = net["gru"]
        with torch.no_grad():
            self.gru.weight_ih_l0.copy_(torch.tensor(g["w_x"]).view(c, 3 * hd).T)
            self.gru.bias_ih_l0.copy_(torch.tensor(g["b_x"]))
            self.gru.weight_hh_l0.copy_(torch.tensor(g["w_h"]).view(hd, 3 * hd).T)
            self.gru.bias_hh_l0.copy_(torch.tensor(g["b_h"]))
        self.channel_means = torch.tensor(net["channel_means"])
        self.channel_stds = torch.tensor(net["channel_stds"])
        self.categories = {name: i for i, name in enumerate(net["categories"]) if i > 0}
        self.embedding = torch.tensor(net["embedding"]).view(-1, net["embedding_dim"])
        self.agg_means = torch.tensor(net["aggregate_means"])
        self.agg_stds = torch.tensor(net["aggregate_stds"])
        self.agg_layer = linear(net["aggregate_layer"])
        self.head = [linear(d) for d in net["head"]]
        self.wide = linear(net["wide"]) if net.get("wide") else None

    def standardise_weeks(self, seq):
        return (torch.log1p(seq.clamp(min=0)) - self.channel_means) / self.channel_stds

    def network_aggregates(self, feats):
        if not self.signed:
            return feats
        neg = (-feats[:, self.signed]).clamp(min=0)
        return torch.cat([feats, neg], dim=1)

    def head_probability(self, h, cats, feats):
        a = self.network_aggregates(feats).float()
        a = (torch.log1p(a.clamp(min=0)) - self.agg_means) / self.agg_stds
        z = torch.cat([h, self.embedding[cats], torch.relu(self.agg_layer(a))], dim=1)
        for i, layer in enumerate(self.head):
            z = layer(z)
            if i + 1 < len(self.head):
                z = torch.relu(z)
        logit = z[:, 0]
        if self.wide is not None:
            logit = logit + self.wide(a)[:, 0]
        return torch.sigmoid(logit.double())

    @torch.inference_mode()
    def explain(self, rows):
        """Score, band, top factors and action code of each feature row (with history)."""
        n, f, w, nb = len(rows), len(self.feature_names), self.weeks, len(self.blocks)
        feats = torch.tensor([r["features"] for r in rows], dtype=torch.float64)
        # Oldest week first, the network's window: the last `weeks` the store sends.
        seq = torch.tensor([r["sequence"][-w:] for r in rows], dtype=torch.float64)
        # A customer without the attribute is the level "<unknown>" (index 0 unless the model
        # learned it as a level of its own), as in sextant_models::churn_serving.
        cats = torch.tensor([self.categories.get((r.get("attributes") or {}).get(
            self.category_attribute, "<unknown>"), 0) for r in rows])
        # Block variants: the block's weeks (0 = most recent = last step) set to typical.
        variants = [seq]
        for b in self.blocks:
            v = seq.clone()
            v[:, w - 1 - b["last"]: w - b["first"], :] = torch.tensor(b["typical_week"],
                                                                   dtype=torch.float64)
            variants.append(v)
        x = self.standardise_weeks(torch.cat(variants).float())
        _, h = self.gru(x)
        h = h[0]
        base_h = h[:n]
        # Feature occlusions share the customer's run: one head pass over every variant.
        occluded = feats.repeat_interleave(f, dim=0)
        idx = torch.arange(n * f)
        occluded[idx, idx % f] = self.typical.repeat(n)
        all_h = torch.cat([base_h, base_h.repeat_interleave(f, dim=0), h[n:]])
        all_cats = torch.cat([cats, cats.repeat_interleave(f), cats.repeat(nb)])
        all_feats = torch.cat([feats, occluded, feats.repeat(nb, 1)])
        p = self.head_probability(all_h, all_cats, all_feats).numpy()
        score = p[:n]
        by_feature = p[n:n + n * f].reshape(n, f)
        by_block = p[n + n * f:].reshape(nb, n).T
        names = self.feature_names + [b["name"] for b in self.blocks]
        out = []
        for i in range(n):
            s = float(score[i])
            impacts = s - np.concatenate([by_feature[i], by_block[i]])
            order = np.argsort(-np.abs(impacts), kind="stable")
            factors = [
                {"factor": names[k], "impact": float(impacts[k]),
                 "direction": "raises_risk" if impacts[k] >= 0 else "lowers_risk"}
                for k in order[:TOP_FACTORS] if abs(impacts[k]) >= MIN_IMPACT
            ]
            band = next((b["name"] for b in self.bands if s >= b["min_score"]),
                        self.bands[-1]["name"])
            top = next((x["factor"] for x in factors if x["direction"] == "raises_risk"), None)
            out.append({"record_id": rows[i]["account_id"], "score": s, "band": band,
                        "factors": factors, "next_best_action": {"code": action_code(band, top)}})
        return out


def create_app(store, trainer, secret):
    app = FastAPI()
    state = {}

    @app.on_event("startup")
    async def startup():
        torch.set_num_threads(1)
        state["http"] = httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(
            max_connections=256, max_keepalive_connections=256))
        current = (await state["http"].get(f"{trainer}/v1/models/current")).json()["version"]
        art = (await state["http"].get(f"{trainer}/v1/models/{current}/artifact")).json()
        state["model"] = Model(art)
        state["log"] = []
        state["flusher"] = asyncio.create_task(flush_log())

    async def flush_log():
        while True:
            await asyncio.sleep(0.5)
            batch, state["log"] = state["log"][:1000], state["log"][1000:]
            if batch:
                try:
                    await state["http"].post(f"{store}/v1/predictions",
                                             json={"predictions": batch})
                except httpx.HTTPError as e:
                    print(f"prediction log: {e}", flush=True)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.post("/v1/scores")
    async def scores(request: Request):
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token")
        try:
            jwt.decode(auth[7:], secret, algorithms=["HS256"],
                                audience="sextant-gateway", issuer="sextant-bench")
        except jwt.PyJWTError as e:
            raise HTTPException(401, f"invalid token: {e}") from e
        body = await request.json()
        ids = body.get("record_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            raise HTTPException(400, "record_ids must name at least one record")
        if len(ids) > MAX_RECORDS:
            raise HTTPException(400, f"at most {MAX_RECORDS} records per call")
        if not all(isinstance(i, str) and ID.match(i) for i in ids):
            raise HTTPException(400, "invalid record id")
        model = state["model"]
        resp = await state["http"].post(f"{store}/v1/features/online",
                                        json={"account_ids": ids, "include_sequences": True})
        if resp.status_code != 200:
            raise HTTPException(502, f"feature store answered {resp.status_code}")
        features = resp.json()
        if features["feature_names"] != model.feature_names:
            raise HTTPException(502, "the feature store serves other features than the model's")
        rows = [r for r in features["rows"] if r.get("features") is not None]
        errors = [{"record_id": r["account_id"], "code": "no_history"}
                  for r in features["rows"] if r.get("features") is None]
        scored = model.explain(rows) if rows else []
        now = datetime.now(timezone.utc).isoformat()
        horizon = model.art["horizon_days"]
        state["log"].extend({"account_id": s["record_id"], "model_version": model.version,
                             "scored_at": now, "score": s["score"], "band": s["band"],
                             "action": s["next_best_action"]["code"], "horizon_days": horizon}
                            for s in scored)
        return Response(orjson.dumps({"model_version": model.version, "scores": scored,
                                      "errors": errors, "bands": model.bands}),
                        media_type="application/json")

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--trainer", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    os.environ["PEER_STORE"], os.environ["PEER_TRAINER"] = args.store, args.trainer
    os.environ["PEER_SECRET"] = args.secret
    import uvicorn
    uvicorn.run("server:app_from_env", factory=True, host="127.0.0.1", port=args.port,
                workers=args.workers, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, app_dir=os.path.dirname(os.path.abspath(__file__)))


def app_from_env():
    return create_app(os.environ["PEER_STORE"], os.environ["PEER_TRAINER"],
                      os.environ["PEER_SECRET"])


if __name__ == "__main__":
    main()
