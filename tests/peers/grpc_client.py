"""An independent gRPC client for tests/it/grpc.rs: Python grpcio, traced by
the OpenTelemetry Python SDK's gRPC instrumentation, error details decoded
by grpcio-status.

stdin: {"target": "127.0.0.1:PORT", "names": ["world", "missing", ...]}
stdout: {"calls": [...], "spans": [...]}: for each name, the answer (code,
message, trailing metadata, and for an error the google.rpc.Status that
grpcio-status decoded, with its ErrorInfo); and every span the Python SDK
finished (the client spans of the calls).
"""

import json
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from grpc_helloworld import finished_spans, helloworld_messages


def metadata_list(metadata):
    out = []
    for key, value in metadata or ():
        if isinstance(value, bytes):
            # Byte for byte, so that text inside binary values can be searched.
            value = value.decode("latin-1")
        out.append([key, value])
    return out


def main():
    request = json.load(sys.stdin)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    GrpcInstrumentorClient().instrument()

    HelloRequest, HelloReply = helloworld_messages()
    calls = []
    with grpc.insecure_channel(request["target"]) as channel:
        say_hello = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=HelloReply.FromString,
        )
        for name in request["names"]:
            call_out = {"name": name}
            try:
                reply, call = say_hello.with_call(HelloRequest(name=name), timeout=20)
                call_out.update(
                    code=call.code().name,
                    message=reply.message,
                    trailing_metadata=metadata_list(call.trailing_metadata()),
                )
            except grpc.RpcError as error:
                call_out.update(
                    code=error.code().name,
                    details=error.details(),
                    trailing_metadata=metadata_list(error.trailing_metadata()),
                )
                # Raises when the status's code or message differ from the call's.
                status = rpc_status.from_call(error)
                if status is not None:
                    infos = []
                    for detail in status.details:
                        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                            info = error_details_pb2.ErrorInfo()
                            detail.Unpack(info)
                            infos.append(
                                {
                                    "reason": info.reason,
                                    "domain": info.domain,
                                    "metadata": dict(info.metadata),
                                }
                            )
                    call_out["status"] = {
                        "code": status.code,
                        "message": status.message,
                        "error_info": infos,
                        "detail_types": [d.type_url for d in status.details],
                    }
            calls.append(call_out)

    spans = finished_spans(exporter)
    json.dump({"calls": calls, "spans": spans}, sys.stdout)


if __name__ == "__main__":
    main()
