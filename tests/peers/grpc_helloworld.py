"""What the Python gRPC peers share: gRPC's helloworld messages (built at
run time from their descriptors: no protoc) and the spans the
OpenTelemetry Python SDK finished, as JSON."""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def helloworld_messages():
    """HelloRequest and HelloReply of gRPC's helloworld.proto, built at run
    time from their descriptors (no protoc)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="helloworld.proto", package="helloworld", syntax="proto3"
    )
    for message, field in (("HelloRequest", "name"), ("HelloReply", "message")):
        m = proto.message_type.add(name=message)
        m.field.add(
            name=field,
            number=1,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("helloworld.HelloRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("helloworld.HelloReply")),
    )


def finished_spans(exporter):
    """The spans of an InMemorySpanExporter as JSON-ready dicts."""
    spans = []
    for span in exporter.get_finished_spans():
        parent = span.parent
        spans.append(
            {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": format(span.context.trace_id, "032x"),
                "span_id": format(span.context.span_id, "016x"),
                "parent_span_id": format(parent.span_id, "016x") if parent else None,
                "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
            }
        )
    return spans
