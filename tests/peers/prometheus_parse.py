"""Parses a metrics page with the official Python Prometheus client's
parsers and prints what it found as JSON, so a test can compare.

stdin: {"format": "text" | "openmetrics", "body": "..."}
stdout: {"families": [{"name", "type", "samples": [{"name", "labels",
        "value", "exemplar": null | {"labels", "value", "timestamp"}}]}]}
        or {"error": "..."} when the page does not parse.
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text


def number(value):
    if value is None:
        return None
    value = float(value)
    if math.isinf(value) or math.isnan(value):
        return str(value)
    return value


def main():
    request = json.load(sys.stdin)
    parse = parse_openmetrics if request["format"] == "openmetrics" else parse_text
    try:
        families = []
        for family in parse(request["body"]):
            samples = []
            for s in family.samples:
                exemplar = None
                if s.exemplar is not None:
                    exemplar = {
                        "labels": dict(s.exemplar.labels),
                        "value": number(s.exemplar.value),
                        "timestamp": number(s.exemplar.timestamp),
                    }
                samples.append({
                    "name": s.name,
                    "labels": dict(s.labels),
                    "value": number(s.value),
                    "exemplar": exemplar,
                })
            families.append({"name": family.name, "type": family.type, "samples": samples})
    except Exception as e:  # the parsers raise ValueError and friends
        json.dump({"error": f"{type(e).__name__}: {e}"}, sys.stdout)
        return
    json.dump({"families": families}, sys.stdout)


if __name__ == "__main__":
    main()
