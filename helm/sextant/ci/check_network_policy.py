#!/usr/bin/env python3
"""Checks the chart's NetworkPolicies: only the gateway accepts traffic from outside the
release, and each internal API accepts exactly the release's pods that call it.

usage: helm template … | check_network_policy.py [--metrics-from-outside] -

For each pod template of the release it takes the union of the ingress rules of every policy
that selects it (policies add up) and compares the sources with who calls whom (README "How it
fits together", plus `helm test`'s Pod and, when installed, the admin console). A rule without
`from` admits everyone; a namespaceSelector/ipBlock peer admits traffic from outside the release.
With --metrics-from-outside (ServiceMonitor on) the services and the console may also admit the
monitoring namespace. Exit 1 with one line per problem.
"""
import argparse
import sys

import yaml

# component -> the release components allowed to call it; "outside" = any source outside.
CALLERS = {
    "gateway": {"outside"},
    "feature-store": {"connector", "trainer", "gateway", "test"},
    "trainer": {"gateway", "retrain", "test"},
    "connector": {"sync", "test"},
    "admin": {"test"},
    "ballista-scheduler": {"feature-store", "ballista-scheduler", "ballista-executor"},
    "ballista-executor": {"feature-store", "ballista-scheduler", "ballista-executor"},
}
SERVICES = {"gateway", "feature-store", "trainer", "connector", "admin"}
# With the admin console installed, it calls these too.
ADMIN_CALLS = {"gateway", "trainer", "connector"}


def selects(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        val, op, vals = labels.get(e["key"]), e["operator"], e.get("values") or []
        if (op == "In" and val not in vals) or (op == "NotIn" and val in vals) \
                or (op == "Exists" and val is None) or (op == "DoesNotExist" and val is not None):
            return False
    return True


def pod_labels(doc):
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--metrics-from-outside", action="store_true")
    args = ap.parse_args()
    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    pods = [d for d in docs if d.get("kind") in {"Deployment", "StatefulSet", "Job", "CronJob"}]
    admin = any(pod_labels(d).get("app.kubernetes.io/component") == "admin" for d in pods)
    problems = []
    if not policies:
        problems.append("no NetworkPolicy rendered")
    for pod in pods:
        labels = pod_labels(pod)
        comp = labels.get("app.kubernetes.io/component")
        name = f"{pod['kind']}/{pod['metadata']['name']}"
        selecting = [p for p in policies
                     if "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
                     and selects(p["spec"].get("podSelector") or {}, labels)]
        if not selecting:
            problems.append(f"{name}: no NetworkPolicy selects it (it accepts any traffic)")
            continue
        allowed = set()
        for p in selecting:
            for rule in p["spec"].get("ingress") or []:
                peers = rule.get("from")
                if not peers:
                    allowed.add("outside")
                for peer in peers or []:
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        sel = peer["podSelector"]
                        if (sel.get("matchLabels") or {}).get("app.kubernetes.io/instance") != labels.get("app.kubernetes.io/instance"):
                            allowed.add("outside")
                        else:
                            allowed.add((sel.get("matchLabels") or {}).get("app.kubernetes.io/component", "?"))
                    else:
                        allowed.add("outside-namespace")
        expected = set(CALLERS.get(comp, set()))
        if admin and comp in ADMIN_CALLS:
            expected.add("admin")
        if comp == "gateway":
            allowed = {"outside" if a == "outside-namespace" else a for a in allowed}
        elif args.metrics_from_outside and comp in SERVICES:
            expected.add("outside-namespace")
        if allowed != expected:
            problems.append(f"{name} ({comp}): admits {sorted(allowed) or 'nothing'}, expected {sorted(expected) or 'nothing'}")
    for p in problems:
        print(p)
    print(f"network-policy: {len(pods)} pod templates, {len(policies)} policies, {len(problems)} problems")
    return 1 if problems or not pods else 0


if __name__ == "__main__":
    sys.exit(main())
