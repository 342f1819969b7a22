"""Decodes what faultline's Jaeger exporter sent, with Apache Thrift's own
Python library and the types Jaeger generated from its IDL (shipped in the
jaeger-client package as jaeger_client/thrift_gen), and prints it as JSON.

Input (stdin, JSON):
  {"protocol": "compact", "messages": ["<hex>", ...]}  UDP datagrams to the agent
  {"protocol": "binary",  "messages": ["<hex>", ...]}  HTTP bodies to the collector

Output (stdout, JSON): {"messages": [{"name", "type", "seqid", "size",
"batch": {"process", "spans"}}, ...]} with every field of every span, each
tag with its thrift type name, the value of the one field that type uses,
and the list of value fields that are set.
"""

import json
import sys

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.Thrift import TMessageType
from thrift.transport import TTransport

from jaeger_client.thrift_gen.agent import Agent
from jaeger_client.thrift_gen.jaeger import ttypes as jaeger

VALUE_FIELDS = ("vStr", "vDouble", "vBool", "vLong", "vBinary")


def tag(t):
    set_fields = [f for f in VALUE_FIELDS if getattr(t, f) is not None]
    value = {
        jaeger.TagType.STRING: t.vStr,
        jaeger.TagType.DOUBLE: t.vDouble,
        jaeger.TagType.BOOL: t.vBool,
        jaeger.TagType.LONG: t.vLong,
        jaeger.TagType.BINARY: t.vBinary.hex() if t.vBinary is not None else None,
    }.get(t.vType)
    return {
        "key": t.key,
        "type": jaeger.TagType._VALUES_TO_NAMES.get(t.vType, t.vType),
        "value": value,
        "set": set_fields,
    }


def tags(ts):
    return None if ts is None else [tag(t) for t in ts]


def span(s):
    return {
        "traceIdLow": s.traceIdLow,
        "traceIdHigh": s.traceIdHigh,
        "spanId": s.spanId,
        "parentSpanId": s.parentSpanId,
        "operationName": s.operationName,
        "references": None
        if s.references is None
        else [
            {
                "refType": jaeger.SpanRefType._VALUES_TO_NAMES.get(r.refType, r.refType),
                "traceIdLow": r.traceIdLow,
                "traceIdHigh": r.traceIdHigh,
                "spanId": r.spanId,
            }
            for r in s.references
        ],
        "flags": s.flags,
        "startTime": s.startTime,
        "duration": s.duration,
        "tags": tags(s.tags),
        "logs": None
        if s.logs is None
        else [{"timestamp": l.timestamp, "fields": tags(l.fields)} for l in s.logs],
    }


def batch(b):
    return {
        "process": {"serviceName": b.process.serviceName, "tags": tags(b.process.tags)},
        "spans": [span(s) for s in b.spans],
    }


def remaining(transport):
    return len(transport.read(1 << 30))


def decode_compact(data):
    transport = TTransport.TMemoryBuffer(data)
    protocol = TCompactProtocol.TCompactProtocol(transport)
    name, mtype, seqid = protocol.readMessageBegin()
    args = Agent.emitBatch_args()
    args.read(protocol)
    protocol.readMessageEnd()
    args.validate()
    return {
        "name": name,
        "type": "ONEWAY" if mtype == TMessageType.ONEWAY else mtype,
        "seqid": seqid,
        "size": len(data),
        "trailing": remaining(transport),
        "batch": batch(args.batch),
    }


def decode_binary(data):
    transport = TTransport.TMemoryBuffer(data)
    protocol = TBinaryProtocol.TBinaryProtocol(transport)
    b = jaeger.Batch()
    b.read(protocol)
    b.validate()
    return {"size": len(data), "trailing": remaining(transport), "batch": batch(b)}


def main():
    request = json.load(sys.stdin)
    decode = {"compact": decode_compact, "binary": decode_binary}[request["protocol"]]
    out = [decode(bytes.fromhex(m)) for m in request["messages"]]
    json.dump({"messages": out}, sys.stdout)


if __name__ == "__main__":
    main()
