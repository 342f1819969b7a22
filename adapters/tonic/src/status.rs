//! faultline's error model the gRPC way: status codes for HTTP statuses,
//! their names, and error answers carrying a `google.rpc.Status` with an
//! `ErrorInfo` (AIP-193) in `grpc-status-details-bin`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use faultline_engine::error::{ProblemDetails, codes};
use faultline_engine::request::adapter::rejection_code;
use faultline_engine::request::{HandlerError, RequestSpan};
use http::{HeaderMap, StatusCode};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// The header of a status's details.
pub(crate) const DETAILS: &str = "grpc-status-details-bin";
/// The headers an error answer's status travels in.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", DETAILS];
/// The `ErrorInfo` domain of a status made by [`status`] (the layer's
/// answer says the service's name instead).
const UNANSWERED_DOMAIN: &str = "faultline";

/// The gRPC code that matches an HTTP status (the mapping of
/// `google.rpc.Code`): `404` is `NOT_FOUND`, `503` is `UNAVAILABLE`, any
/// other `4xx` is `FAILED_PRECONDITION` and any other `5xx` is `INTERNAL`.
pub fn code_for_http(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        405 | 501 => Code::Unimplemented,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::Aborted,
        413 | 429 => Code::ResourceExhausted,
        416 => Code::OutOfRange,
        499 => Code::Cancelled,
        502 | 503 => Code::Unavailable,
        400..=499 => Code::FailedPrecondition,
        500..=599 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The HTTP status a gRPC code stands for (`google.rpc.Code`'s mapping),
/// for what hears a call as a request.
pub fn http_for_code(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code's name as the conventions record it in
/// `rpc.response.status_code` (`OK`, `NOT_FOUND`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Whether `code` makes a server span an error, by the conventions' gRPC
/// table (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
/// `UNAVAILABLE`, `DATA_LOSS`); on a client span every code but `OK` is.
pub fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// An application error on its way from a handler to the layer, inside the
/// [`Status`] that [`status`] makes.
#[derive(Debug)]
struct Carried(HandlerError);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What a caller without the layer could see: the code's name only.
        let code = self.0.code().unwrap_or(codes::INTERNAL);
        f.write_str(code.name())
    }
}

impl std::error::Error for Carried {}

/// A handler's error as a [`Status`]: the gRPC code matching the error's
/// HTTP status ([`code_for_http`]). Return it from a service method
/// (`.map_err(faultline_tonic::status)?`); the server layer records the
/// error on the span and answers with the masked message and the error
/// details (`ErrorInfo`: the error's name, its code and the trace id).
/// Without the layer the answer says the code's title, with an `ErrorInfo`
/// of the error's name and code (domain `faultline`).
///
/// In a response stream (an item `Err(status(error))`), tonic keeps only
/// the status's headers, not the error itself: the answer then carries the
/// error's name and code from those details, and the code's title as its
/// message; the span records the status, not the error's message.
pub fn status(error: impl Into<HandlerError>) -> Status {
    let error = error.into();
    let problem = error.fallback_problem();
    let name = error.code().unwrap_or(codes::INTERNAL).name();
    let metadata = HashMap::from([("code".to_owned(), problem.code.to_string())]);
    let mut status = Status::with_error_details(
        code_for_http(error.status()),
        problem.detail,
        ErrorDetails::with_error_info(name, UNANSWERED_DOMAIN, metadata),
    );
    status.set_source(Arc::new(Carried(error)));
    status
}

/// The application error a response carries, when a handler answered with
/// [`status`].
pub(crate) fn carried_error(response_extensions: &http::Extensions) -> Option<HandlerError> {
    let status = response_extensions.get::<Status>()?;
    let source = std::error::Error::source(status)?;
    source.downcast_ref::<Carried>().map(|c| c.0.clone())
}

/// Whether the answer is tonic's own for a method no service has: an
/// `UNIMPLEMENTED` with no message and no cause (the router's), or with no
/// status behind it at all (a generated service's fallback).
pub(crate) fn is_unknown_method(response_extensions: &http::Extensions, code: Code) -> bool {
    code == Code::Unimplemented
        && response_extensions
            .get::<Status>()
            .is_none_or(|s| s.message().is_empty() && std::error::Error::source(s).is_none())
}

/// What an error answer says, made from what the span recorded.
pub(crate) enum Answer<'a> {
    /// An application error from [`status`] (recorded on the span here).
    Error(&'a HandlerError),
    /// A panic (already recorded): `INTERNAL`, code 5000, nothing of its text.
    Panic,
    /// A status of the handler's own (or tonic's): its code and message
    /// (masked) are kept; for a status from [`status`] whose error did not
    /// come along (a stream's), with the error's name and code from its
    /// details.
    Status(Code, String, Option<(String, u32)>),
}

/// The answer for the error status in `headers` when no error came with
/// it; `None` (kept as it is) for a status with details of the handler's
/// own.
pub(crate) fn status_answer(code: Code, headers: &HeaderMap) -> Option<Answer<'static>> {
    let status = Status::from_header_map(headers);
    let message = status
        .as_ref()
        .map(|s| s.message().to_owned())
        .unwrap_or_default();
    if !headers.contains_key(DETAILS) {
        return Some(Answer::Status(code, message, None));
    }
    let info = status?.get_details_error_info()?;
    let number = info.metadata.get("code")?.parse().ok()?;
    (info.domain == UNANSWERED_DOMAIN).then_some(Answer::Status(
        code,
        message,
        Some((info.reason, number)),
    ))
}

/// Writes the error answer into `headers` (response headers of a
/// trailers-only answer, or trailers): `grpc-status`, `grpc-message` (the
/// masked message) and `grpc-status-details-bin` (a `google.rpc.Status` with
/// the same code and message and an `ErrorInfo`). Returns the code and the
/// HTTP status the answer stands for.
pub(crate) fn write_error(
    span: &mut RequestSpan,
    answer: Answer<'_>,
    headers: &mut HeaderMap,
) -> (Code, StatusCode) {
    // A problem's `instance` has no place in a gRPC answer.
    let instance = "";
    let (code, reason, problem) = match answer {
        Answer::Error(error) => {
            span.record_error(error);
            let problem = span.problem_for_error(error, instance);
            let code = code_for_http(problem.status_code());
            let name = error.code().unwrap_or(codes::INTERNAL).name();
            (code, Cow::Borrowed(name), problem)
        }
        Answer::Panic => (
            Code::Internal,
            Cow::Borrowed(codes::INTERNAL.name()),
            span.problem_for_panic(instance),
        ),
        Answer::Status(code, message, named) => {
            // A 404 on a known method is "no such thing".
            let mut problem = span.rejection_problem(http_for_code(code), &message, true, instance);
            let reason = match named {
                Some((name, number)) => {
                    problem.code = number;
                    Cow::Owned(name)
                }
                None if code == Code::NotFound => Cow::Borrowed(codes::RESOURCE_NOT_FOUND.name()),
                None => Cow::Borrowed(rejection_code(problem.status_code()).name()),
            };
            (code, reason, problem)
        }
    };
    let status = error_status(span, code, &reason, &problem);
    for name in STATUS_HEADERS {
        headers.remove(name);
    }
    // Only a message with a control character fails here; the masked
    // detail then goes without its details rather than unanswered.
    if status.add_header(headers).is_err() {
        let _ = Status::new(code, problem.title.clone()).add_header(headers);
    }
    (code, problem.status_code())
}

/// The `google.rpc.Status` of an error answer: code, message and an
/// `ErrorInfo` (reason: the error's name; domain: the service; metadata:
/// `code` and, when the trace is exported, `trace_id`).
fn error_status(span: &RequestSpan, code: Code, reason: &str, problem: &ProblemDetails) -> Status {
    let mut metadata = HashMap::with_capacity(2);
    metadata.insert("code".to_owned(), problem.code.to_string());
    if let Some(trace_id) = &problem.trace_id {
        metadata.insert("trace_id".to_owned(), trace_id.clone());
    }
    let domain = span.engine().config().service_name().to_owned();
    Status::with_error_details(
        code,
        problem.detail.clone(),
        ErrorDetails::with_error_info(reason, domain, metadata),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_http_status() {
        for n in 0..=16 {
            let code = Code::from_i32(n);
            let back = code_for_http(http_for_code(code));
            // Several codes share an HTTP status; the way back lands on one
            // of the same family, and OK, NOT_FOUND, INTERNAL come back.
            assert_eq!(
                http_for_code(back),
                http_for_code(code),
                "{code:?} -> {back:?}"
            );
        }
        assert_eq!(code_for_http(StatusCode::NOT_FOUND), Code::NotFound);
        assert_eq!(
            code_for_http(StatusCode::INTERNAL_SERVER_ERROR),
            Code::Internal
        );
        assert_eq!(
            code_for_http(StatusCode::PAYMENT_REQUIRED),
            Code::FailedPrecondition
        );
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::Unknown), "UNKNOWN");
        assert_eq!(code_name(Code::Internal), "INTERNAL");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }

    use faultline_engine::error::ErrorCode;

    #[test]
    fn without_the_layer_a_status_says_the_codes_title_only() {
        const DECLINED: ErrorCode =
            ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED);
        let s = status(faultline_engine::error::AppError::new(
            DECLINED,
            "declined for alice@example.com",
        ));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(!s.message().contains("alice"), "{}", s.message());
        let info = s.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("PAYMENT_DECLINED", "faultline")
        );
        assert_eq!(info.metadata["code"], "2001");
        let response = s.into_http::<()>();
        let carried = carried_error(response.extensions()).unwrap();
        assert_eq!(carried.code().map(|c| c.code()), Some(2001));
    }
}
