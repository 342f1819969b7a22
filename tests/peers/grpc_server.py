"""An independent gRPC server for tests/it/grpc.rs: Python grpcio serving
helloworld.Greeter/SayHello, traced by the OpenTelemetry Python SDK's gRPC
instrumentation (the server side reads the caller's trace context from the
metadata).

stdin: {"calls": N}. It prints {"port": P} on one line once listening on
127.0.0.1, answers N calls (`missing` fails with NOT_FOUND, any other name
gets `Hello NAME`), then prints {"spans": [...]} (its server spans) and exits.
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import GrpcInstrumentorServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from grpc_helloworld import finished_spans, helloworld_messages


def main():
    expected = json.load(sys.stdin)["calls"]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    GrpcInstrumentorServer().instrument()

    HelloRequest, HelloReply = helloworld_messages()
    answered = threading.Semaphore(0)

    def say_hello(request, context):
        try:
            if request.name == "missing":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
            return HelloReply(message="Hello " + request.name)
        finally:
            answered.release()

    handler = grpc.method_handlers_generic_handler(
        "helloworld.Greeter",
        {
            "SayHello": grpc.unary_unary_rpc_method_handler(
                say_hello,
                request_deserializer=HelloRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    for _ in range(expected):
        if not answered.acquire(timeout=30):
            break
    server.stop(grace=2).wait()
    print(json.dumps({"spans": finished_spans(exporter)}), flush=True)


if __name__ == "__main__":
    main()
