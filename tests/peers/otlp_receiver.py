"""An OTLP trace receiver built on the official OpenTelemetry protobuf
definitions (PyPI opentelemetry-proto) and grpcio, for faultline's tests.

    python3 otlp_receiver.py [--grpc-port N] [--http-port N]
                             [--require-header NAME=VALUE]
                             [--tls-cert F --tls-key F [--tls-client-ca F]]

Listens on 127.0.0.1 for OTLP/gRPC (TraceService/Export) and OTLP/HTTP
(POST /v1/traces, protobuf, optionally gzip), prints
"ready GRPC_PORT HTTP_PORT", then one JSON line per request received:
{"transport", "headers", "rejected", "spans": [...]}, each span flattened with
hex ids, typed attribute values, the resource and the scope. With
--require-header, a request without that header value is rejected
(UNAUTHENTICATED / 401) and reported with "rejected": true. With --tls-cert,
both listeners serve TLS; with --tls-client-ca they also require a client
certificate signed by that CA. Exits when standard input closes.
"""

import argparse
import gzip
import json
import ssl
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()


def emit(record):
    with LOCK:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return {"type": "string", "value": v.string_value}
    if kind == "bool_value":
        return {"type": "bool", "value": v.bool_value}
    if kind == "int_value":
        return {"type": "int", "value": v.int_value}
    if kind == "double_value":
        return {"type": "double", "value": v.double_value}
    if kind == "array_value":
        return {"type": "array", "value": [any_value(x) for x in v.array_value.values]}
    if kind == "kvlist_value":
        return {"type": "kvlist", "value": attributes(v.kvlist_value.values)}
    if kind == "bytes_value":
        return {"type": "bytes", "value": v.bytes_value.hex()}
    return {"type": "empty", "value": None}


def attributes(kvs):
    return [{"key": kv.key, **any_value(kv.value)} for kv in kvs]


def flatten(request):
    spans = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    {
                        "resource": resource,
                        "scope": {"name": ss.scope.name, "version": ss.scope.version},
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "trace_state": s.trace_state,
                        "flags": s.flags,
                        "name": s.name,
                        "kind": s.kind,
                        "start_time_unix_nano": s.start_time_unix_nano,
                        "end_time_unix_nano": s.end_time_unix_nano,
                        "attributes": attributes(s.attributes),
                        "dropped_attributes_count": s.dropped_attributes_count,
                        "events": [
                            {
                                "name": e.name,
                                "time_unix_nano": e.time_unix_nano,
                                "attributes": attributes(e.attributes),
                            }
                            for e in s.events
                        ],
                        "links": [
                            {
                                "trace_id": l.trace_id.hex(),
                                "span_id": l.span_id.hex(),
                                "trace_state": l.trace_state,
                                "attributes": attributes(l.attributes),
                            }
                            for l in s.links
                        ],
                        "status": {"code": s.status.code, "message": s.status.message},
                    }
                )
    return spans


class Receiver:
    def __init__(self, required):
        self.required = required

    def allowed(self, headers):
        if not self.required:
            return True
        name, value = self.required
        return headers.get(name) == value


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver):
        self.receiver = receiver

    def Export(self, request, context):
        headers = {k: v for k, v in context.invocation_metadata()}
        if not self.receiver.allowed(headers):
            emit({"transport": "grpc", "headers": sorted(headers), "rejected": True, "spans": []})
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad credentials")
        emit({"transport": "grpc", "headers": sorted(headers), "rejected": False, "spans": flatten(request)})
        return trace_service_pb2.ExportTraceServiceResponse()


def http_handler(receiver):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            if not receiver.allowed(headers):
                emit({"transport": "http", "headers": sorted(headers), "rejected": True, "spans": []})
                self.send_response(401)
                self.end_headers()
                return
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            emit(
                {
                    "transport": "http",
                    "headers": sorted(headers),
                    "content_type": headers.get("content-type"),
                    "gzip": headers.get("content-encoding") == "gzip",
                    "rejected": False,
                    "spans": flatten(request),
                }
            )
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--require-header")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-client-ca")
    args = parser.parse_args()
    required = None
    if args.require_header:
        name, value = args.require_header.split("=", 1)
        required = (name.lower(), value)
    receiver = Receiver(required)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(receiver), server)
    address = "127.0.0.1:%d" % args.grpc_port
    if args.tls_cert:
        cert = open(args.tls_cert, "rb").read()
        key = open(args.tls_key, "rb").read()
        ca = open(args.tls_client_ca, "rb").read() if args.tls_client_ca else None
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
        grpc_port = server.add_secure_port(address, creds)
    else:
        grpc_port = server.add_insecure_port(address)
    server.start()

    httpd = ThreadingHTTPServer(("127.0.0.1", args.http_port), http_handler(receiver))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.tls_client_ca)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    emit_ready = "ready %d %d" % (grpc_port, httpd.server_address[1])
    with LOCK:
        sys.stdout.write(emit_ready + "\n")
        sys.stdout.flush()
    sys.stdin.read()
    server.stop(0)
    httpd.shutdown()


if __name__ == "__main__":
    main()
