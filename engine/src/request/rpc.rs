//! RPCs (gRPC) through the same request machinery as HTTP requests: the
//! span starts from the incoming metadata (propagators, trusted peers), the
//! handler runs in [`RequestSpan::instrument`], errors and panics are
//! recorded by [`RequestSpan::record_error`] and
//! [`RequestSpan::record_panic`]; only the span's name and attributes, and
//! how its end is told to the correlators, are the RPC conventions'.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::SystemTime;

use http::{HeaderMap, Method, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::adapter::shared_route;
use super::{RequestSpan, ip_text, split_host};
use crate::Engine;
use crate::correlate::FailureKind;

/// The `rpc.method` of a method the server does not know.
const OTHER_METHOD: &str = "_OTHER";

/// What the engine needs to know of an incoming RPC.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RpcInfo<'a> {
    /// The RPC system (`rpc.system.name`), such as `grpc`.
    pub system: &'static str,
    /// The fully qualified method, `package.Service/Method`: the span's name
    /// and `rpc.method`.
    pub method: &'a str,
    /// The request's metadata (headers), for the incoming trace context.
    pub headers: &'a HeaderMap,
    /// The `authority` the client called (`host[:port]`), when known.
    pub authority: Option<&'a str>,
    /// The peer's address (`network.peer.address`, `network.peer.port`; also
    /// what the trusted-peer rules look at).
    pub peer: Option<SocketAddr>,
}

impl<'a> RpcInfo<'a> {
    /// The call of `method` over `system` with its metadata `headers`; no
    /// authority and no peer (see [`with_authority`](Self::with_authority),
    /// [`with_peer`](Self::with_peer)).
    pub fn new(system: &'static str, method: &'a str, headers: &'a HeaderMap) -> Self {
        RpcInfo {
            system,
            method,
            headers,
            authority: None,
            peer: None,
        }
    }

    /// With the `authority` the client called.
    pub fn with_authority(mut self, authority: Option<&'a str>) -> Self {
        self.authority = authority;
        self
    }

    /// With the peer's address.
    pub fn with_peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }
}

/// How an RPC ended.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RpcEnd {
    /// The status code's name (`rpc.response.status_code`): `OK`, `NOT_FOUND`, ...
    pub status_code: &'static str,
    /// Whether the status is an error for a server span, by the
    /// conventions' table for the RPC system.
    pub server_error: bool,
    /// The HTTP status the status code stands for (`200` for `OK`), for
    /// correlators that hear the call as a request.
    pub http_status: StatusCode,
}

impl RpcEnd {
    /// An RPC ended with `status_code` (an error for a server span when
    /// `server_error`), standing for `http_status`.
    pub fn new(status_code: &'static str, server_error: bool, http_status: StatusCode) -> Self {
        RpcEnd {
            status_code,
            server_error,
            http_status,
        }
    }
}

impl Engine {
    /// Starts the server span of an RPC: extracts the parent (or link) from
    /// the metadata as [`start_request`](Engine::start_request) does from
    /// headers, names the span after the method (`helloworld.Greeter/SayHello`)
    /// and sets the RPC semantic-convention attributes. End it with
    /// [`RequestSpan::finish_rpc`].
    ///
    /// A method on an [excluded route](crate::config::TracingConfig::excluded_routes)
    /// (matched by its path, `/package.Service/Method`; a prefix such as
    /// `/package.Service/*` excludes a whole service) starts no span and
    /// counts nothing: the incoming context is only extracted, to be made
    /// current while the handler runs.
    pub fn start_rpc(&self, info: &RpcInfo<'_>) -> RequestSpan {
        let excluded = self.config().excluded_routes();
        if !excluded.is_empty() && excluded.matches(&format!("/{}", info.method)) {
            let (cx, _) = self.extract_from(info.headers, info.peer.map(|p| p.ip()));
            return RequestSpan::without_span(self, cx, Method::POST);
        }
        let method = shared_route(info.method);
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new(semconv::RPC_SYSTEM_NAME, info.system));
        attributes.push(KeyValue::new(semconv::RPC_METHOD, method.clone()));
        if let Some(authority) = info.authority {
            let (address, port) = split_host(authority);
            attributes.push(KeyValue::new(
                semconv::SERVER_ADDRESS,
                super::recent::text(super::recent::Kind::Host, address),
            ));
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        if let Some(peer) = info.peer {
            attributes.push(KeyValue::new(
                semconv::NETWORK_PEER_ADDRESS,
                super::recent::client(peer.ip(), ip_text),
            ));
            attributes.push(KeyValue::new(
                semconv::NETWORK_PEER_PORT,
                i64::from(peer.port()),
            ));
        }
        let started = SystemTime::now();
        let (cx, parent_span_id) = self.start_server(
            method.clone(),
            attributes,
            info.headers,
            info.peer.map(|p| p.ip()),
            started,
        );
        RequestSpan {
            engine: self.clone(),
            cx,
            started,
            method: Method::POST,
            route: Some(method.clone()),
            parent_span_id,
            failure: None,
            responded: None,
            excluded: false,
            finished: false,
            rpc: Some((info.system, method)),
        }
    }
}

impl RequestSpan {
    /// Marks an RPC's method as one the server does not know (the
    /// conventions' `_OTHER`, the original kept in `rpc.method_original`;
    /// the span is renamed after the RPC system), so that a caller cannot
    /// make names without bound.
    pub fn set_rpc_method_unknown(&mut self) {
        let Some((system, method)) = &mut self.rpc else {
            return;
        };
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            semconv::RPC_METHOD_ORIGINAL,
            std::mem::replace(method, Cow::Borrowed(OTHER_METHOD)),
        ));
        span.set_attribute(KeyValue::new(semconv::RPC_METHOD, OTHER_METHOD));
        span.update_name(Cow::Borrowed(*system));
        self.route = Some(Cow::Borrowed(OTHER_METHOD));
    }

    /// Ends an RPC's span with its status (`rpc.response.status_code`; for
    /// a status that is a server error, `error.type` and the span's error
    /// status) and tells the correlators
    /// ([`Correlator::on_rpc_end`](crate::correlate::Correlator::on_rpc_end)).
    /// Any status but `OK` counts as an error answer for error keeping.
    pub fn finish_rpc(mut self, end: &RpcEnd) {
        if self.excluded {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            semconv::RPC_RESPONSE_STATUS_CODE,
            end.status_code,
        ));
        if end.server_error {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, end.status_code));
            // A panic or an error of a server-fault code has set the
            // error status already, with its (masked) message.
            let recorded = self.failure.as_ref().is_some_and(|f| {
                f.kind == FailureKind::Panic || f.code.is_none_or(|c| c.status().is_server_error())
            });
            if !recorded {
                span.set_status(Status::error(end.status_code));
            }
        }
        let error_response = self.failure.is_some() || !end.http_status.is_success();
        let kept = self.keep_if_error(error_response);
        self.close(end.http_status.as_u16(), kept, Some(end.status_code));
    }
}
