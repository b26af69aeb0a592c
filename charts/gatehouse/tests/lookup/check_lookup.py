#!/usr/bin/env python3
"""Checks what `helm template` cannot: the chart's `lookup`-based Secrets across install and upgrades,
and the `auto` monitoring switches against a cluster's discovery.

It runs `helm upgrade --install --dry-run=server` (which renders NOTES and performs lookups) against a
minimal fake kube-apiserver in this process: discovery, /version, an empty Helm release store, and the
Secrets of the scenario. Needs python3 with PyYAML, openssl, and helm (HELM=path, default `helm`).

  HELM=/tmp/helm python3 charts/gatehouse/tests/lookup/check_lookup.py
"""
import base64, hashlib, json, os, re, subprocess, sys, tempfile, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

import yaml

CHART = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HELM = os.environ.get("HELM", "helm")
NS, RELEASE = "gh", "gh"


class Cluster:
    secrets = {}        # name -> data (base64 values)
    monitoring = False  # serve monitoring.coreos.com/v1


def resources(monitoring):
    def r(name, kind, namespaced=True):
        return {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
    g = {
        ("", "v1"): [r("secrets", "Secret"), r("configmaps", "ConfigMap"), r("services", "Service"),
                     r("serviceaccounts", "ServiceAccount"), r("persistentvolumeclaims", "PersistentVolumeClaim"),
                     r("pods", "Pod"), r("namespaces", "Namespace", False)],
        ("apps", "v1"): [r("deployments", "Deployment"), r("statefulsets", "StatefulSet")],
        ("autoscaling", "v2"): [r("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
        ("policy", "v1"): [r("poddisruptionbudgets", "PodDisruptionBudget")],
        ("networking.k8s.io", "v1"): [r("networkpolicies", "NetworkPolicy")],
    }
    if monitoring:
        g[("monitoring.coreos.com", "v1")] = [r("servicemonitors", "ServiceMonitor"), r("prometheusrules", "PrometheusRule")]
    return g


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        groups = resources(Cluster.monitoring)
        if path == "/version":
            return self.send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"})
        if path == "/api":
            return self.send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            out = []
            for g, v in groups:
                if g:
                    gv = {"groupVersion": f"{g}/{v}", "version": v}
                    out.append({"name": g, "versions": [gv], "preferredVersion": gv})
            return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": out})
        m = re.fullmatch(r"/api/v1|/apis/([^/]+)/([^/]+)", path)
        if m:
            key = ("", "v1") if path == "/api/v1" else (m.group(1), m.group(2))
            if key in groups:
                return self.send(200, {"kind": "APIResourceList", "groupVersion": "/".join(k for k in key if k),
                                       "resources": groups[key]})
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", path)
        if m and m.group(2) in Cluster.secrets:
            return self.send(200, {"kind": "Secret", "apiVersion": "v1", "type": "Opaque", "data": Cluster.secrets[m.group(2)],
                                   "metadata": {"name": m.group(2), "namespace": m.group(1),
                                                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                                                "annotations": {"meta.helm.sh/release-name": RELEASE,
                                                                "meta.helm.sh/release-namespace": m.group(1)}}})
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/secrets", path):  # Helm's release store: empty
            return self.send(200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": []})
        self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})


def helm(kubeconfig, *args):
    cmd = [HELM, "upgrade", "--install", RELEASE, CHART, "-n", NS, "--dry-run=server",
           "--disable-openapi-validation", "--kubeconfig", kubeconfig, *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{p.stderr}")
    manifest = p.stdout.split("\nNOTES:\n")[0]
    manifest = manifest[manifest.index("\n---"):]
    objs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(manifest) if d}
    return objs, p.stdout.split("\nNOTES:\n")[1]


def data(objs, name):
    return objs[("Secret", name)]["data"]


def decoded(objs, name):
    return {k: base64.b64decode(v).decode() for k, v in data(objs, name).items()}


def annotations(objs, deployment):
    return objs[("Deployment", deployment)]["spec"]["template"]["metadata"]["annotations"]


def sprig_yaml_sha(d):  # what `toYaml | sha256sum` of a map[string]string gives
    return hashlib.sha256("\n".join(f"{k}: {v}" for k, v in sorted(d.items())).encode()).hexdigest()


failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp()
    kubeconfig = os.path.join(tmp, "kubeconfig")
    with open(kubeconfig, "w") as f:
        yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NS}}],
                        "users": [{"name": "fake", "user": {}}]}, f)
    keys, admin, pg = f"{RELEASE}-gatehouse-auth-keys", f"{RELEASE}-gatehouse-bootstrap-admin", f"{RELEASE}-gatehouse-postgresql"
    user, auth = f"{RELEASE}-gatehouse-user", f"{RELEASE}-gatehouse-auth"

    # 1. First install: everything generated; the pods' checksums are of exactly what the Secrets hold.
    objs, notes = helm(kubeconfig, "--set", "postgresql.enabled=true")
    k = decoded(objs, keys)
    check(sorted(k) == ["active-kid", "k1.pem"] and k["k1.pem"].startswith("-----BEGIN PRIVATE KEY-----"),
          "install: an Ed25519 PKCS#8 key k1 is generated")
    check(k["active-kid"] == "k1", "install: active-kid is k1")
    check(annotations(objs, auth)["checksum/keys"] == sprig_yaml_sha(data(objs, keys)),
          "install: checksum/keys is the checksum of the keys Secret as rendered (one generation per render)")
    check(annotations(objs, user)["checksum/bootstrap-admin"] == sprig_yaml_sha(data(objs, admin)),
          "install: checksum/bootstrap-admin matches the admin Secret")
    check(annotations(objs, user)["checksum/database"] == sprig_yaml_sha(data(objs, pg)) == annotations(objs, auth)["checksum/database"],
          "install: checksum/database matches the PostgreSQL Secret")
    check(f"get secret {admin}" in notes, "install: NOTES say how to read the admin password")

    # 2. Upgrade with the Secrets of step 1 in the cluster: nothing changes, so nothing rolls.
    Cluster.secrets = {n: data(objs, n) for n in (keys, admin, pg)}
    again, _ = helm(kubeconfig, "--set", "postgresql.enabled=true")
    check(again == objs, "upgrade: every object, Secrets and checksums included, is identical (kept by lookup)")

    # 3. Rotation: add k2 (k1 stays active), activate k2, drop k1.
    step1, _ = helm(kubeconfig, "--set", "postgresql.enabled=true", "--set", "auth.keys.ids={k1,k2}")
    k1 = decoded(step1, keys)
    check(k1["k1.pem"] == k["k1.pem"] and k1["k2.pem"].startswith("-----BEGIN PRIVATE KEY-----") and k1["k2.pem"] != k["k1.pem"],
          "rotate 1: k1 kept, k2 generated")
    check(k1["active-kid"] == "k1", "rotate 1: k1 still signs")
    Cluster.secrets[keys] = data(step1, keys)
    step2, _ = helm(kubeconfig, "--set", "postgresql.enabled=true", "--set", "auth.keys.ids={k1,k2}", "--set", "auth.keys.activeKeyId=k2")
    k2 = decoded(step2, keys)
    check(k2["active-kid"] == "k2" and k2["k1.pem"] == k1["k1.pem"] and k2["k2.pem"] == k1["k2.pem"], "rotate 2: k2 signs, both keys kept")
    check(annotations(step2, auth)["checksum/keys"] != annotations(step1, auth)["checksum/keys"], "rotate 2: the Auth pods roll")
    check(annotations(step2, user) == annotations(step1, user), "rotate 2: the User pods do not roll")
    Cluster.secrets[keys] = data(step2, keys)
    step3, _ = helm(kubeconfig, "--set", "postgresql.enabled=true", "--set", "auth.keys.ids={k2}")
    k3 = decoded(step3, keys)
    check(sorted(k3) == ["active-kid", "k2.pem"] and k3["k2.pem"] == k2["k2.pem"] and k3["active-kid"] == "k2",
          "rotate 3: k1 removed, k2 kept and active")

    # 4. Passwords survive too.
    check(decoded(step3, admin) == decoded(objs, admin), "upgrade: the admin password is kept")
    check(decoded(step3, pg) == decoded(objs, pg), "upgrade: the PostgreSQL passwords and URLs are kept")

    # 5. `auto` monitoring follows discovery.
    Cluster.secrets = {}
    none, _ = helm(kubeconfig)
    Cluster.monitoring = True
    some, notes = helm(kubeconfig)
    kinds = lambda o: sorted({kind for kind, _ in o if kind in ("ServiceMonitor", "PrometheusRule")})
    check(kinds(none) == [], "auto: no ServiceMonitor/PrometheusRule without monitoring.coreos.com/v1")
    check(kinds(some) == ["PrometheusRule", "ServiceMonitor"], "auto: both with monitoring.coreos.com/v1")
    check(sum(1 for kind, n in some if kind == "ConfigMap" and "-dashboard-" in n) == 3, "auto: three dashboard ConfigMaps")

    server.shutdown()
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
