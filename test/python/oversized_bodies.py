#!/usr/bin/env python3
"""Send oversized request bodies the way Python clients do: the whole body first, the answer after.

Python 3 standard library only (urllib, as `requests` behaves the same here). THREADS threads
each make CALLS calls, every call a fresh connection carrying a body of SIZE bytes with a
Content-Length, and print one JSON object per call on stdout:

    {"status": 429, "headers": {...}, "body": "..."}     an answer was read
    {"error": "BrokenPipeError: [Errno 32] Broken pipe"}  no answer: the connection was cut

Usage: oversized_bodies.py URL CONTENT_TYPE API_KEY THREADS CALLS SIZE
The body is a Connect JSON request (content type application/json) or a gRPC-Web frame
(application/grpc-web+proto) holding SIZE bytes, so that it is over the limit in both.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import urllib.error
import urllib.request


def body_for(content_type: str, size: int) -> bytes:
    if content_type.startswith("application/grpc-web"):
        payload = b"\x0a" + b"x" * (size - 6)  # arbitrary bytes: the server must not parse them
        return struct.pack(">BI", 0, len(payload)) + payload
    filler = "x" * (size - 100)
    return json.dumps({"namespace": "paas-ws-big", "name": "big", "chart": "oci://r.example/c/x", "values": {"blob": filler}}).encode()


def main() -> int:
    url, content_type, api_key, threads, calls, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    body = body_for(content_type, size)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    lock = threading.Lock()
    results: list[dict] = []

    def one() -> dict:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type, "X-API-Key": api_key})
        try:
            with opener.open(req, timeout=60) as res:
                return {"status": res.status, "headers": {k.lower(): v for k, v in res.headers.items()}, "body": res.read().decode("latin-1")}
        except urllib.error.HTTPError as err:
            return {"status": err.code, "headers": {k.lower(): v for k, v in err.headers.items()}, "body": err.read().decode("latin-1")}
        except (urllib.error.URLError, OSError) as err:
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            return {"error": f"{type(reason).__name__}: {reason}"}

    def worker() -> None:
        for _ in range(calls):
            r = one()
            with lock:
                results.append(r)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
