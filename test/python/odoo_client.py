#!/usr/bin/env python3
"""Drive the PaaS operator's REST API the way the Odoo addon does.

Python 3.11 standard library only. One session object carries the X-API-Key header,
sends JSON bodies with a timeout, and reads `detail` from every error answer, as the
addon's client does. It walks one release through its whole life:

    health -> create namespace -> install podinfo (HTTP chart repository, repo_url)
    -> get -> status -> upgrade (PATCH, new version and values) -> revisions
    -> rollback -> uninstall -> get (404, reading `detail`)

plus an install straight from an OCI registry (no repo_url, as the addon names most
charts), and a few refusals the addon relies on (wrong key, foreign namespace).

Settings come from the command line or, failing that, the environment:

    --base-url      PAAS_BASE_URL    (default http://127.0.0.1:8000)
    --api-key       PAAS_API_KEY or API_KEY
    --chart-repo    CHART_REPO_URL   HTTP chart repository serving podinfo 6.13.0 and 6.14.1
    --oci-registry  OCI_REGISTRY     host:port of the registry serving charts/nginx
    --namespace     PAAS_NAMESPACE   tenant namespace to use (default: a fresh paas-ws-odoo-…)

Exit status: 0 when every check passed; 1 on the first mismatch, with a line starting
"FAIL:" that says what was expected and what came back; 2 for missing settings.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

RELEASE_KEYS = ("name", "namespace", "revision", "status", "chart", "app_version", "updated", "description", "values")


class OperatorError(Exception):
    """An error answer of the operator: HTTP status plus its `detail` string."""

    def __init__(self, status: int, detail: str, error_type: str | None, body: Any):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.error_type = error_type
        self.body = body


class CheckFailed(Exception):
    pass


class OperatorSession:
    """What the addon keeps per company: base URL, API key, timeouts; JSON in, JSON out."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"X-API-Key": api_key, "Accept": "application/json", "User-Agent": "odoo-paas-addon-test/1.0"}
        # The operator is reached directly; never through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @staticmethod
    def path(*segments: str) -> str:
        return "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)

    def request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> tuple[int, Any]:
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as res:
                return res.status, _json(res.read())
        except urllib.error.HTTPError as err:
            payload = _json(err.read())
            detail = payload.get("detail") if isinstance(payload, dict) else None
            if not isinstance(detail, str) or not detail:
                raise CheckFailed(f"{method} {path}: HTTP {err.code} without a `detail` string: {payload!r}") from None
            raise OperatorError(err.code, detail, payload.get("error_type"), payload) from None
        except urllib.error.URLError as err:
            raise CheckFailed(f"{method} {path}: cannot reach the operator at {self.base_url}: {err.reason}") from None

    def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return self.request("DELETE", path, **kw)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckFailed(f"answer is not JSON: {raw[:200]!r}") from None


def expect(cond: bool, what: str, got: Any = None) -> None:
    if not cond:
        raise CheckFailed(what if got is None else f"{what}; got {json.dumps(got, default=str)[:600]}")


def expect_equal(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise CheckFailed(f"{what}: expected {want!r}, got {got!r}")


def expect_release(rel: Any, what: str, **want: Any) -> None:
    expect(isinstance(rel, dict), f"{what}: a release object", rel)
    missing = [k for k in RELEASE_KEYS if k not in rel]
    expect(not missing, f"{what}: release lacks {missing}", rel)
    expect(isinstance(rel["revision"], int), f"{what}: revision is a number", rel)
    expect(isinstance(rel["updated"], str) and "T" in rel["updated"], f"{what}: updated is an ISO 8601 string", rel)
    for key, value in want.items():
        expect_equal(rel.get(key), value, f"{what}: {key}")


def expect_error(fn: Any, status: int, what: str, detail_contains: str | None = None) -> OperatorError:
    try:
        fn()
    except OperatorError as err:
        expect_equal(err.status, status, f"{what}: HTTP status (detail: {err.detail})")
        if detail_contains is not None:
            expect(detail_contains in err.detail, f"{what}: detail mentions {detail_contains!r}", err.detail)
        return err
    raise CheckFailed(f"{what}: expected HTTP {status}, the call succeeded")


def step(name: str, detail: str) -> None:
    print(f"[ok] {name}: {detail}", flush=True)


def run(s: OperatorSession, chart_repo: str, oci_registry: str, ns: str) -> None:
    rel = "web"
    P = s.path

    status, health = s.get("/health")
    expect_equal(status, 200, "GET /health status")
    expect(health.get("status") in ("healthy", "degraded"), "health status is healthy or degraded", health)
    expect_equal(health.get("status"), "healthy", "health status")
    step("health", f"{health['status']}, helm {health.get('helm_version')}")

    err = expect_error(lambda: OperatorSession(s.base_url, "not-the-key-0123456789").get(P("api", "releases", ns, rel)), 401, "wrong API key")
    step("wrong key refused", f"401 {err.detail}")

    status, body = s.post("/api/namespaces", {"name": ns, "cpu_limit": "4", "memory_limit": "8Gi", "storage_limit": "10Gi"})
    expect_equal(status, 201, "POST /api/namespaces status")
    expect(isinstance(body.get("message"), str) and ns in body["message"], "namespace message names the namespace", body)
    step("create namespace", body["message"])

    err = expect_error(lambda: s.post("/api/namespaces", {"name": "kube-system"}), 400, "namespace outside the prefix", "prefix")
    step("foreign namespace refused", f"400 {err.detail}")

    install = {
        "namespace": ns,
        "name": rel,
        "chart": "podinfo",
        "repo_url": chart_repo,
        "version": "6.13.0",
        "values": {"replicaCount": 1, "ui": {"message": "hello from odoo"}},
        "wait": True,
        "timeout": 180,
        "odoo_instance_id": 42,  # an extra field the operator ignores
    }
    status, body = s.post("/api/releases", install, timeout=240)
    expect_equal(status, 201, "POST /api/releases status")
    expect_release(body, "install", name=rel, namespace=ns, revision=1, status="deployed", chart="podinfo")
    expect_equal(body.get("chart_version"), "6.13.0", "install: chart_version")
    step("install podinfo 6.13.0 from the chart repository", f"revision {body['revision']}, {body['status']}, app {body['app_version']}")

    err = expect_error(lambda: s.post("/api/releases", {"namespace": ns, "name": rel, "chart": "podinfo", "repo_url": chart_repo}), 409, "install over an existing release")
    step("second install refused", f"409 {err.detail}")

    status, body = s.get(P("api", "releases", ns, rel))
    expect_equal(status, 200, "GET release status")
    expect_release(body, "get", name=rel, revision=1, status="deployed", chart="podinfo")
    expect_equal(body["values"].get("ui"), {"message": "hello from odoo"}, "get: values")
    step("get", f"revision {body['revision']}, updated {body['updated']}")

    status, body = s.get(P("api", "releases", ns, rel, "status"))
    expect_equal(status, 200, "GET status status")
    expect_release(body.get("release"), "status.release", status="deployed")
    pods = body.get("pods")
    expect(isinstance(pods, list) and len(pods) >= 1, "status lists the release's pods", body)
    for pod in pods:
        expect(all(k in pod for k in ("name", "phase", "ready", "restarts", "age")), "pod has name, phase, ready, restarts, age", pod)
        expect_equal(pod["phase"], "Running", f"pod {pod['name']} phase")
        expect_equal(pod["ready"], "1/1", f"pod {pod['name']} ready")
    expect(body.get("pod_retrieval_error") in (None, ""), "no pod retrieval error", body)
    step("status", ", ".join(f"{p['name']} {p['phase']} {p['ready']}" for p in pods))

    upgrade = {"chart": "podinfo", "repo_url": chart_repo, "version": "6.14.1", "values": {"replicaCount": 2}, "wait": True, "timeout": 180}
    status, body = s.patch(P("api", "releases", ns, rel), upgrade, timeout=240)
    expect_equal(status, 200, "PATCH release status")
    expect_release(body, "upgrade", revision=2, status="deployed", chart="podinfo")
    expect_equal(body.get("chart_version"), "6.14.1", "upgrade: chart_version")
    expect_equal(body["values"].get("replicaCount"), 2, "upgrade: values.replicaCount")
    step("upgrade to 6.14.1", f"revision {body['revision']}, values {json.dumps(body['values'], sort_keys=True)}")

    status, body = s.get(P("api", "releases", ns, rel, "revisions"))
    expect_equal(status, 200, "GET revisions status")
    revs = body.get("revisions")
    expect(isinstance(revs, list), "revisions is a list", body)
    for r in revs:
        expect(all(k in r for k in ("revision", "updated", "status", "chart", "app_version", "description")), "revision entry has every field", r)
    expect_equal([(r["revision"], r["status"], r["chart"]) for r in revs], [(1, "superseded", "podinfo-6.13.0"), (2, "deployed", "podinfo-6.14.1")], "revisions")
    step("revisions", "; ".join(f"{r['revision']} {r['status']} {r['chart']}" for r in revs))

    status, body = s.post(P("api", "releases", ns, rel, "rollback"), {}, timeout=240)
    expect_equal(status, 200, "POST rollback status")
    expect(isinstance(body.get("message"), str) and "rolled back" in body["message"], "rollback message", body)
    status, after = s.get(P("api", "releases", ns, rel))
    expect_release(after, "after rollback", revision=3, status="deployed", chart_version="6.13.0")
    step("rollback", body["message"])

    err = expect_error(lambda: s.post(P("api", "releases", ns, rel, "rollback"), {"revision": "two"}), 422, "rollback with a wrong type")
    step("wrong type refused", f"422 {err.detail}")

    status, body = s.delete(P("api", "releases", ns, rel), timeout=240)
    expect_equal(status, 200, "DELETE release status")
    expect(isinstance(body.get("message"), str) and rel in body["message"], "uninstall message", body)
    step("uninstall", body["message"])

    err = expect_error(lambda: s.get(P("api", "releases", ns, rel)), 404, "get after uninstall")
    expect_equal(err.detail, f"Release {rel} not found in namespace {ns}", "404 detail")
    expect_equal(err.error_type, "not_found", "404 error_type")
    step("get after uninstall", f"404 {err.detail}")

    # Most of the addon's charts are OCI references, without repo_url.
    oci = f"oci://{oci_registry}/charts/nginx"
    status, body = s.post(
        "/api/releases",
        {"namespace": ns, "name": "proxy", "chart": oci, "values": {"service": {"type": "ClusterIP"}}, "timeout": 180},
        timeout=240,
    )
    expect_equal(status, 201, "POST /api/releases (OCI) status")
    expect_release(body, "OCI install", name="proxy", revision=1, status="deployed", chart="nginx")
    expect_equal(body.get("chart_reference"), oci, "OCI install: chart_reference")
    step("install nginx from OCI", f"{oci} {body.get('chart_version')}, revision {body['revision']}, {body['status']}")

    status, body = s.patch(P("api", "releases", ns, "proxy"), {"values": {"replicaCount": 2}}, timeout=240)
    expect_equal(status, 200, "PATCH OCI release status")
    expect_release(body, "OCI values-only upgrade", revision=2, status="deployed", chart="nginx")
    expect_equal(body["values"].get("replicaCount"), 2, "OCI upgrade: values.replicaCount")
    step("upgrade nginx values only", f"revision {body['revision']}, chart {body.get('chart_version')} kept")

    status, body = s.delete(P("api", "releases", ns, "proxy"), timeout=240)
    expect_equal(status, 200, "DELETE OCI release status")
    step("uninstall nginx", body["message"])


def main(argv: list[str]) -> int:
    env = os.environ
    p = argparse.ArgumentParser(description="Walk the PaaS operator's REST API as the Odoo addon does.")
    p.add_argument("--base-url", default=env.get("PAAS_BASE_URL", "http://127.0.0.1:8000"))
    p.add_argument("--api-key", default=env.get("PAAS_API_KEY") or env.get("API_KEY"))
    p.add_argument("--chart-repo", default=env.get("CHART_REPO_URL"))
    p.add_argument("--oci-registry", default=env.get("OCI_REGISTRY"))
    p.add_argument("--namespace", default=env.get("PAAS_NAMESPACE") or f"paas-ws-odoo-{secrets.token_hex(3)}")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (installs and upgrades get more)")
    args = p.parse_args(argv)
    missing = [flag for flag, value in (("--api-key", args.api_key), ("--chart-repo", args.chart_repo), ("--oci-registry", args.oci_registry)) if not value]
    if missing:
        print(f"FAIL: missing settings: {', '.join(missing)} (or their environment variables)", file=sys.stderr)
        return 2

    print(f"operator {args.base_url}, namespace {args.namespace}", flush=True)
    started = time.monotonic()
    session = OperatorSession(args.base_url, args.api_key, timeout=args.timeout)
    try:
        run(session, args.chart_repo, args.oci_registry, args.namespace)
    except CheckFailed as err:
        print(f"FAIL: {err}", flush=True)
        return 1
    except OperatorError as err:
        print(f"FAIL: unexpected HTTP {err.status} ({err.error_type}): {err.detail}", flush=True)
        return 1
    print(f"PASS: every check passed in {time.monotonic() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
