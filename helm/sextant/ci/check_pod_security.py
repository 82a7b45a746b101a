#!/usr/bin/env python3
"""Checks rendered manifests against the Pod Security "restricted" profile, plus this chart's
own rules for every pod it makes.

usage: helm template … | check_pod_security.py [--require-pull-secrets] [--expect KIND/NAME …] -

kubernetes-validate checks that the manifests are well-formed; it cannot say whether a cluster
that enforces `pod-security.kubernetes.io/enforce: restricted` admits the pods, nor whether a
pod can pull its image or start on a read-only root. This walks every pod template
(Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod) and reports, per container:

restricted profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/):
  seccompProfile RuntimeDefault or Localhost (pod or container, never Unconfined); runAsNonRoot
  true and runAsUser not 0; allowPrivilegeEscalation false; capabilities drop ALL and add at most
  NET_BIND_SERVICE; not privileged; no hostNetwork/hostPID/hostIPC, hostPort, hostPath or other
  non-restricted volume types; no procMount, no sysctls; no AppArmor/SELinux overrides.
this chart: imagePullSecrets (with --require-pull-secrets), readOnlyRootFilesystem,
  automountServiceAccountToken false, memory requests and limits, and liveness, readiness and
  startup probes on long-running containers (not Jobs).

Exit 1 with one line per problem. Stdlib + PyYAML (which kubernetes-validate installs).
"""
import argparse
import sys

import yaml

POD_HOLDERS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def check_pod(where, kind, spec, require_pull_secrets):
    problems = []
    psc = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"{where}: {key} is set")
    if psc.get("sysctls"):
        problems.append(f"{where}: pod sets sysctls")
    if require_pull_secrets and not spec.get("imagePullSecrets"):
        problems.append(f"{where}: no imagePullSecrets")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken is not false")
    for vol in spec.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"{where}: volume {vol.get('name')} uses {sorted(kinds - ALLOWED_VOLUMES)}")
    containers = [(c, False) for c in spec.get("containers") or []]
    containers += [(c, True) for c in spec.get("initContainers") or []]
    if not containers:
        problems.append(f"{where}: no containers")
    for c, is_init in containers:
        cw = f"{where} container {c.get('name')}"
        csc = c.get("securityContext") or {}
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in SECCOMP_OK:
            problems.append(f"{cw}: seccompProfile is {seccomp!r}, not RuntimeDefault/Localhost")
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{cw}: runAsNonRoot is not true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{cw}: runAsUser is 0")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            problems.append(f"{cw}: privileged")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{cw}: capabilities do not drop ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            problems.append(f"{cw}: adds capabilities {sorted(extra)}")
        if csc.get("procMount") not in (None, "Default"):
            problems.append(f"{cw}: procMount {csc.get('procMount')}")
        se_type = (csc.get("seLinuxOptions") or psc.get("seLinuxOptions") or {}).get("type")
        if se_type not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            problems.append(f"{cw}: seLinuxOptions type {se_type}")
        apparmor = (csc.get("appArmorProfile") or psc.get("appArmorProfile") or {}).get("type")
        if apparmor == "Unconfined":
            problems.append(f"{cw}: appArmorProfile Unconfined")
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cw}: readOnlyRootFilesystem is not true")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{cw}: hostPort {port['hostPort']}")
        res = c.get("resources") or {}
        if not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
            problems.append(f"{cw}: no memory request and limit")
        if kind in LONG_RUNNING and not is_init:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if not c.get(probe):
                    problems.append(f"{cw}: no {probe}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", help="rendered manifests, - for stdin")
    ap.add_argument("--require-pull-secrets", action="store_true")
    ap.add_argument("--expect", action="append", default=[], metavar="KIND/NAME",
                    help="a pod holder that must be present (guards against checking nothing)")
    args = ap.parse_args()
    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    problems, seen = [], set()
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or doc.get("kind") not in POD_HOLDERS:
            continue
        name = (doc.get("metadata") or {}).get("name")
        seen.add(f"{doc['kind']}/{name}")
        problems += check_pod(f"{doc['kind']}/{name}", doc["kind"], pod_spec(doc), args.require_pull_secrets)
    for want in args.expect:
        if want not in seen:
            problems.append(f"{want}: not rendered")
    for p in problems:
        print(p)
    print(f"pod-security: {len(seen)} pod templates checked, {len(problems)} problems")
    return 1 if problems or not seen else 0


if __name__ == "__main__":
    sys.exit(main())
