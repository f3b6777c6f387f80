#!/usr/bin/env python3
"""Drive the PaaS operator's ops API paths the way the old ops API's callers do.

Python 3.11 standard library only (urllib). One session carries the X-API-Key header,
sends JSON bodies and reads `detail` from every error answer. Against a namespace that holds a
Deployment and a StatefulSet with bound claims, it runs:

    GET /health/live, GET /health/ready
    POST /ops/namespaces/{ns}/deployments/{name}/scale   {"replicas": N}
    POST /ops/namespaces/{ns}/statefulsets/{name}/scale  {"replicas": N}
    DELETE /ops/namespaces/{ns}/pods/{pod}
    DELETE /ops/namespaces/{ns}/persistentvolumeclaims/{pvc}   (mounted: refused; unmounted: gone)
    POST /ops/jobs/pg-rebuild {namespace, statefulset, ordinal, target_replicas} -> {job_id}
    GET /ops/jobs/{job_id} until success or failed
    plus refusals: wrong key, kube-system, missing replicas, unknown deployment.

Usage: ops_client.py --base-url URL --api-key KEY --namespace NS --deployment NAME
       --statefulset NAME --pod POD --mounted-pvc PVC --free-pvc PVC
Exit status: 0 when every check passed; 1 on the first mismatch ("FAIL: ..."); 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

REBUILD_STEPS = ["wait-for-release", "scale-to-zero", "wait-pods-gone", "delete-pvcs", "wait-pvcs-gone", "scale-up", "wait-ready", "record"]


class OpsError(Exception):
    def __init__(self, status: int, detail: str, body: Any):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.body = body


class CheckFailed(Exception):
    pass


class OpsSession:
    def __init__(self, base_url: str, api_key: str, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"X-API-Key": api_key, "Accept": "application/json", "User-Agent": "ops-api-caller-test/1.0"}
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @staticmethod
    def path(*segments: str) -> str:
        return "/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None
        headers = dict(self.headers)
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as res:
                return res.status, _json(res.read())
        except urllib.error.HTTPError as err:
            payload = _json(err.read())
            detail = payload.get("detail") if isinstance(payload, dict) else None
            if not isinstance(detail, str) or not detail:
                raise CheckFailed(f"{method} {path}: HTTP {err.code} without a `detail` string: {payload!r}") from None
            raise OpsError(err.code, detail, payload) from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckFailed(f"answer is not JSON: {raw[:200]!r}") from None


def expect(cond: bool, what: str, got: Any = None) -> None:
    if not cond:
        raise CheckFailed(what if got is None else f"{what}; got {json.dumps(got, default=str)[:600]}")


def refused(session: OpsSession, method: str, path: str, body: Any, status: int, what: str) -> str:
    try:
        session.request(method, path, body)
    except OpsError as err:
        expect(err.status == status, f"{what}: expected HTTP {status}", err.body)
        return err.detail
    raise CheckFailed(f"{what}: expected HTTP {status}, the call succeeded")


def ok(line: str) -> None:
    print(f"[ok] {line}", flush=True)


def run(a: argparse.Namespace) -> None:
    s = OpsSession(a.base_url, a.api_key)
    p = s.path
    status, body = s.request("GET", "/health/live")
    expect(status == 200 and body == {"status": "ok"}, "GET /health/live", body)
    status, body = s.request("GET", "/health/ready")
    expect(status == 200 and body.get("status") == "ready", "GET /health/ready", body)
    ok("health: live, ready")

    for n in (3, 1):
        status, body = s.request("POST", p("ops", "namespaces", a.namespace, "deployments", a.deployment, "scale"), {"replicas": n})
        expect(status == 200, "scale deployment status", body)
        expect(body["workload"]["desired_replicas"] == n and body["workload"]["kind"] == "WORKLOAD_KIND_DEPLOYMENT", f"deployment scaled to {n}", body)
        expect(isinstance(body.get("operation_id"), str) and body["operation_id"], "an operation id", body)
    ok(f"scale deployment {a.deployment}: 3, then 1")
    status, body = s.request("POST", p("ops", "namespaces", a.namespace, "statefulsets", a.statefulset, "scale"), {"replicas": 2})
    expect(status == 200 and body["workload"]["desired_replicas"] == 2 and body["previous_replicas"] == 2, "scale statefulset", body)
    ok(f"scale statefulset {a.statefulset}: 2")

    detail = refused(s, "POST", p("ops", "namespaces", a.namespace, "deployments", a.deployment, "scale"), {}, 422, "scale without replicas")
    expect("replicas" in detail, "422 names replicas", detail)
    detail = refused(s, "POST", p("ops", "namespaces", a.namespace, "deployments", "no-such-app", "scale"), {"replicas": 1}, 404, "unknown deployment")
    refused(s, "POST", p("ops", "namespaces", "kube-system", "deployments", "coredns", "scale"), {"replicas": 0}, 403, "kube-system")
    other = OpsSession(a.base_url, "wrong-key-0123456789abcdef")
    refused(other, "POST", p("ops", "namespaces", a.namespace, "deployments", a.deployment, "scale"), {"replicas": 0}, 401, "wrong key")
    ok("refusals: 422 missing replicas, 404 unknown deployment, 403 kube-system, 401 wrong key")

    status, body = s.request("DELETE", p("ops", "namespaces", a.namespace, "pods", a.pod))
    expect(status == 200 and body["message"] == f"Pod {a.pod} deleted", "delete pod", body)
    ok(f"delete pod {a.pod}")

    detail = refused(s, "DELETE", p("ops", "namespaces", a.namespace, "persistentvolumeclaims", a.mounted_pvc), None, 400, "mounted claim")
    expect("mounted by running pod" in detail, "the refusal names the pods", detail)
    status, body = s.request("DELETE", p("ops", "namespaces", a.namespace, "persistentvolumeclaims", a.free_pvc))
    expect(status == 200 and body["deleted"] is True, "delete free claim", body)
    ok(f"delete claim: {a.mounted_pvc} refused ({detail}); {a.free_pvc} deleted")

    status, body = s.request(
        "POST", "/ops/jobs/pg-rebuild", {"namespace": a.namespace, "statefulset": a.statefulset, "ordinal": 1, "target_replicas": 2}
    )
    expect(status == 202 and isinstance(body.get("job_id"), str) and body["job_id"], "pg-rebuild answers {job_id}", body)
    job_id = body["job_id"]
    deadline = time.monotonic() + 180
    while True:
        status, job = s.request("GET", p("ops", "jobs", job_id))
        expect(status == 200 and job["job_id"] == job_id and job["type"] == "pg-rebuild", "job shape", job)
        if job["status"] in ("success", "failed"):
            break
        expect(job["status"] in ("pending", "running"), "job status", job)
        expect(time.monotonic() < deadline, "the job ends within 180 s", job)
        time.sleep(0.5)
    expect(job["status"] == "success", "the rebuild succeeded", job)
    expect([st["name"] for st in job["steps"]] == REBUILD_STEPS, "steps in order", job["steps"])
    expect([st["order"] for st in job["steps"]] == sorted(st["order"] for st in job["steps"]), "orders ascend", job["steps"])
    expect(all(st["status"] == "success" and st["started_at"] and st["finished_at"] for st in job["steps"]), "every step succeeded with times", job["steps"])
    expect(job["params"]["statefulset"] == a.statefulset and job["params"]["ordinal"] == 1 and job["created_at"] and job["finished_at"], "params and times", job)
    ok(f"pg-rebuild job {job_id}: success, steps {', '.join(st['name'] for st in job['steps'])}")

    refused(s, "POST", "/ops/jobs/pg-rebuild", {"namespace": a.namespace, "ordinal": 1}, 422, "pg-rebuild without statefulset")
    ok("pg-rebuild without statefulset: 422")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("base-url", "api-key", "namespace", "deployment", "statefulset", "pod", "mounted-pvc", "free-pvc"):
        ap.add_argument(f"--{name}", required=True)
    a = ap.parse_args()
    try:
        run(a)
    except (CheckFailed, OpsError) as err:
        print(f"FAIL: {err}", flush=True)
        return 1
    print("PASS: every check passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
