"""Decodes the envelopes faultline's Sentry plugin sent, with the envelope
parser of Sentry's own Python SDK (sentry_sdk.envelope.Envelope), and prints
them as JSON.

Input (stdin, JSON): {"envelopes": ["<hex>", ...]}  HTTP request bodies
Output (stdout, JSON): {"envelopes": [{"headers": {...}, "items": [{"type",
"headers", "payload" (parsed JSON, or null), "event" (the SDK's own
get_event(), for event items)}, ...]}, ...]}
"""

import json
import sys

from sentry_sdk.envelope import Envelope


def decode(raw):
    envelope = Envelope.deserialize(raw)
    items = []
    for item in envelope.items:
        body = item.payload.get_bytes()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        items.append(
            {
                "type": item.type,
                "headers": item.headers,
                "payload": payload,
                "event": item.get_event(),
            }
        )
    return {"headers": envelope.headers, "items": items}


def main():
    request = json.load(sys.stdin)
    out = [decode(bytes.fromhex(h)) for h in request["envelopes"]]
    json.dump({"envelopes": out}, sys.stdout)


if __name__ == "__main__":
    main()
