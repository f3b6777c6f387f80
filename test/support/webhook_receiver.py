"""A Standard Webhooks receiver on 127.0.0.1 for the e2e tests, verifying from the spec.

Every request is checked by hand (HMAC-SHA256 of "id.timestamp.body" with the base64-decoded
whsec_ secret, compared with each space-separated v1 signature, timestamp within 5 minutes)
and, when the `standardwebhooks` package is importable, by it as well. One JSON line per
request goes to stdout; the first line is {"port": N}.

    python3 webhook_receiver.py <secret> [<secret> ...]
"""

import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from standardwebhooks.webhooks import Webhook  # type: ignore

    HAVE_LIBRARY = True
except Exception:  # noqa: BLE001 - the library is optional
    HAVE_LIBRARY = False

SECRETS = sys.argv[1:]


def verify_by_hand(secret, msg_id, timestamp, body, signatures):
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if abs(time.time() - int(timestamp)) > 300:
        return False
    for sig in signatures.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


def verify_by_library(secret, headers, body):
    if not HAVE_LIBRARY:
        return None
    try:
        Webhook(secret).verify(body, headers)
        return True
    except Exception:  # noqa: BLE001
        return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        msg_id = self.headers.get("webhook-id", "")
        ts = self.headers.get("webhook-timestamp", "")
        sigs = self.headers.get("webhook-signature", "")
        headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sigs}
        by_hand = [verify_by_hand(s, msg_id, ts, body, sigs) for s in SECRETS]
        by_library = [verify_by_library(s, headers, body) for s in SECRETS]
        event = json.loads(body) if body else {}
        print(
            json.dumps(
                {
                    "id": msg_id,
                    "timestamp": ts,
                    "signatures": len(sigs.split(" ")),
                    "by_hand": by_hand,
                    "by_library": by_library,
                    "type": event.get("type"),
                    "operation": (event.get("data") or {}).get("id"),
                    "namespace": ((event.get("data") or {}).get("target") or {}).get("namespace"),
                    "bytes": len(body),
                }
            ),
            flush=True,
        )
        self.send_response(204 if all(by_hand) else 400)
        self.end_headers()

    def log_message(self, *args):  # keep stdout for the JSON lines
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1], "library": HAVE_LIBRARY}), flush=True)
server.serve_forever()
