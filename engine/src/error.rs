//! The error model: numeric error codes, application errors and RFC 9457
//! problem details that carry the code and the trace id.
//!
//! ```
//! use faultline_engine::error::{AppError, ErrorCode, ProblemDetails, Severity};
//! use http::StatusCode;
//!
//! pub const USER_NOT_FOUND: ErrorCode =
//!     ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND).with_title("User not found");
//!
//! let err = AppError::new(USER_NOT_FOUND, "no user with id 42");
//! let problem = ProblemDetails::from_app_error(&err)
//!     .with_trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
//!     .with_instance("/users/42");
//! let body = problem.to_json();
//! assert!(body.contains(r#""code":1001"#));
//! assert!(body.contains(r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#));
//! assert_eq!(USER_NOT_FOUND.severity(), Severity::Warning);
//! ```

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::RwLock;

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// How bad an error is; decides, for example, which errors reach Sentry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Expected and uninteresting.
    Debug,
    /// Expected, worth a note.
    Info,
    /// The caller's fault (most 4xx).
    Warning,
    /// The service's fault (most 5xx).
    Error,
    /// Needs someone now.
    Critical,
}

impl Severity {
    /// Lowercase name (`warning`, `error`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A numeric application error code with its HTTP status, title and severity.
///
/// Codes are plain constants, made with `const fn`s:
///
/// ```
/// # use faultline_engine::error::{ErrorCode, Severity};
/// # use http::StatusCode;
/// pub const PAYMENT_DECLINED: ErrorCode =
///     ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED)
///         .with_title("Payment declined")
///         .with_severity(Severity::Warning);
/// assert_eq!(PAYMENT_DECLINED.code(), 2001);
/// assert_eq!(PAYMENT_DECLINED.status(), StatusCode::PAYMENT_REQUIRED);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    code: u32,
    name: &'static str,
    status: StatusCode,
    title: Option<&'static str>,
    severity: Severity,
    type_uri: Option<&'static str>,
}

impl ErrorCode {
    /// A code with its name (`UPPER_SNAKE`, used as `exception.type`) and HTTP
    /// status. The title defaults to the status's reason phrase; the severity
    /// to `Error` for 5xx and `Warning` otherwise.
    pub const fn new(code: u32, name: &'static str, status: StatusCode) -> Self {
        let severity = if status.as_u16() >= 500 {
            Severity::Error
        } else {
            Severity::Warning
        };
        ErrorCode {
            code,
            name,
            status,
            title: None,
            severity,
            type_uri: None,
        }
    }
    /// Sets the human-readable title (problem details `title`).
    pub const fn with_title(mut self, title: &'static str) -> Self {
        self.title = Some(title);
        self
    }
    /// Sets the severity.
    pub const fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
    /// Sets the URI that documents this error (problem details `type`;
    /// `about:blank` when unset).
    pub const fn with_type_uri(mut self, uri: &'static str) -> Self {
        self.type_uri = Some(uri);
        self
    }
    /// The number.
    pub const fn code(&self) -> u32 {
        self.code
    }
    /// The name, such as `USER_NOT_FOUND`.
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The HTTP status of responses for this error.
    pub const fn status(&self) -> StatusCode {
        self.status
    }
    /// The title: the one set, else the status's reason phrase.
    pub fn title(&self) -> &'static str {
        match self.title {
            Some(t) => t,
            None => self.status.canonical_reason().unwrap_or("Error"),
        }
    }
    /// The severity.
    pub const fn severity(&self) -> Severity {
        self.severity
    }
    /// The problem type URI (`about:blank` when unset).
    pub fn type_uri(&self) -> &'static str {
        self.type_uri.unwrap_or("about:blank")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.name)
    }
}

/// The codes faultline itself uses for errors that are not the application's.
/// Their numbers are the HTTP status times ten (5000 for a panic or an
/// internal error), so that they stay out of an application's own ranges.
pub mod codes {
    use super::{ErrorCode, Severity};
    use http::StatusCode;

    /// The request could not be read (malformed body, bad parameters).
    pub const BAD_REQUEST: ErrorCode = ErrorCode::new(4000, "BAD_REQUEST", StatusCode::BAD_REQUEST);
    /// Authentication is missing or wrong.
    pub const UNAUTHORIZED: ErrorCode =
        ErrorCode::new(4010, "UNAUTHORIZED", StatusCode::UNAUTHORIZED);
    /// Authenticated but not allowed.
    pub const FORBIDDEN: ErrorCode = ErrorCode::new(4030, "FORBIDDEN", StatusCode::FORBIDDEN);
    /// No route matches the path.
    pub const ROUTE_NOT_FOUND: ErrorCode =
        ErrorCode::new(4040, "ROUTE_NOT_FOUND", StatusCode::NOT_FOUND);
    /// The route exists, the resource it names does not.
    pub const RESOURCE_NOT_FOUND: ErrorCode =
        ErrorCode::new(4041, "RESOURCE_NOT_FOUND", StatusCode::NOT_FOUND);
    /// The route exists, the method does not.
    pub const METHOD_NOT_ALLOWED: ErrorCode =
        ErrorCode::new(4050, "METHOD_NOT_ALLOWED", StatusCode::METHOD_NOT_ALLOWED);
    /// The body is larger than allowed.
    pub const PAYLOAD_TOO_LARGE: ErrorCode =
        ErrorCode::new(4130, "PAYLOAD_TOO_LARGE", StatusCode::PAYLOAD_TOO_LARGE);
    /// The body's media type is not accepted.
    pub const UNSUPPORTED_MEDIA_TYPE: ErrorCode = ErrorCode::new(
        4150,
        "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    /// The body is well-formed but its content is not accepted.
    pub const UNPROCESSABLE_CONTENT: ErrorCode = ErrorCode::new(
        4220,
        "UNPROCESSABLE_CONTENT",
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    /// Rate limited.
    pub const TOO_MANY_REQUESTS: ErrorCode =
        ErrorCode::new(4290, "TOO_MANY_REQUESTS", StatusCode::TOO_MANY_REQUESTS);
    /// An unexpected failure, a panic included.
    pub const INTERNAL: ErrorCode =
        ErrorCode::new(5000, "INTERNAL_ERROR", StatusCode::INTERNAL_SERVER_ERROR)
            .with_severity(Severity::Critical);
    /// A dependency is unavailable.
    pub const UNAVAILABLE: ErrorCode =
        ErrorCode::new(5030, "UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE);
    /// A dependency did not answer in time.
    pub const TIMEOUT: ErrorCode = ErrorCode::new(5040, "TIMEOUT", StatusCode::GATEWAY_TIMEOUT);
}

/// Implemented by error types that carry an [`ErrorCode`].
///
/// A user's own error enum implements it, and registers the type with
/// [`register_error_type`] so that its code is also found when the error sits
/// deeper in another error's source chain:
///
/// ```
/// use faultline_engine::error::{find_error_code, register_error_type, ErrorCode, HasErrorCode};
/// use http::StatusCode;
///
/// const OUT_OF_STOCK: ErrorCode = ErrorCode::new(3001, "OUT_OF_STOCK", StatusCode::CONFLICT);
///
/// #[derive(Debug, thiserror::Error)]
/// enum ShopError {
///     #[error("item {0} is out of stock")]
///     OutOfStock(u64),
///     #[error("database error")]
///     Db(#[source] std::io::Error),
/// }
///
/// impl HasErrorCode for ShopError {
///     fn error_code(&self) -> Option<ErrorCode> {
///         match self {
///             ShopError::OutOfStock(_) => Some(OUT_OF_STOCK),
///             ShopError::Db(_) => None,
///         }
///     }
/// }
///
/// register_error_type::<ShopError>();
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("checkout failed")]
/// struct CheckoutFailed(#[source] ShopError);
///
/// let err = CheckoutFailed(ShopError::OutOfStock(7));
/// assert_eq!(find_error_code(&err), Some(OUT_OF_STOCK));
/// ```
pub trait HasErrorCode {
    /// The code of this error, or `None` when it has none of its own (the
    /// search then goes on down the source chain).
    fn error_code(&self) -> Option<ErrorCode>;
}

type Resolver = fn(&(dyn StdError + 'static)) -> Option<ErrorCode>;

static RESOLVERS: RwLock<Vec<Resolver>> = RwLock::new(Vec::new());

fn resolve<E: HasErrorCode + StdError + 'static>(
    err: &(dyn StdError + 'static),
) -> Option<ErrorCode> {
    err.downcast_ref::<E>().and_then(HasErrorCode::error_code)
}

/// Makes the codes of error type `E` findable through source chains
/// ([`find_error_code`]). Registering a type twice is harmless.
pub fn register_error_type<E: HasErrorCode + StdError + 'static>() {
    let resolver: Resolver = resolve::<E>;
    let mut list = RESOLVERS.write().unwrap_or_else(|e| e.into_inner());
    if !list.iter().any(|r| std::ptr::fn_addr_eq(*r, resolver)) {
        list.push(resolver);
    }
}

/// The code of `err`: the first [`AppError`] or registered [`HasErrorCode`]
/// type with a code, walking `err` and then its source chain. `None` when no
/// link has one: a code is never guessed.
pub fn find_error_code(err: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    let resolvers = RESOLVERS.read().unwrap_or_else(|e| e.into_inner());
    let mut current = Some(err);
    let mut depth = 0;
    while let Some(e) = current {
        if let Some(app) = e.downcast_ref::<AppError>() {
            return Some(app.code);
        }
        if let Some(code) = resolvers.iter().find_map(|r| r(e)) {
            return Some(code);
        }
        depth += 1;
        if depth > 64 {
            break; // a cyclic or absurdly deep chain
        }
        current = e.source();
    }
    None
}

/// An application error: a code, a message, an optional detail for the
/// client and an optional source error.
///
/// The message is what `Display` shows and what is recorded on the span
/// (masked); the detail, when set, is what the client reads in the problem
/// details (masked too), else the message is.
pub struct AppError {
    code: ErrorCode,
    message: Cow<'static, str>,
    detail: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl AppError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        AppError {
            code,
            message: message.into(),
            detail: None,
            source: None,
        }
    }
    /// An internal error (code [`codes::INTERNAL`]) wrapping `source`.
    pub fn internal(source: impl StdError + Send + Sync + 'static) -> Self {
        AppError::new(codes::INTERNAL, "internal error").with_source(source)
    }
    /// Sets the client-facing detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    /// Sets the underlying cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The client-facing detail, if set.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
    /// The HTTP status of the code.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppError")
            .field("code", &self.code.code)
            .field("name", &self.code.name)
            .field("message", &self.message)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for AppError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl HasErrorCode for AppError {
    fn error_code(&self) -> Option<ErrorCode> {
        Some(self.code)
    }
}

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 problem details with the extension members `code` and `trace_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProblemDetails {
    /// A URI reference identifying the problem type (`about:blank` by default).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// An explanation specific to this occurrence.
    pub detail: String,
    /// A URI reference for this occurrence (usually the request path).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instance: Option<String>,
    /// The application error code.
    pub code: u32,
    /// The trace id (32 lowercase hex digits) of the request, when traced.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace_id: Option<String>,
    /// Further extension members.
    #[serde(flatten, default)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl ProblemDetails {
    /// Problem details for `code`, with `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ProblemDetails {
            type_uri: code.type_uri().to_owned(),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail: detail.into(),
            instance: None,
            code: code.code(),
            trace_id: None,
            extensions: serde_json::Map::new(),
        }
    }
    /// Problem details for an application error: its detail if set, else its message.
    pub fn from_app_error(err: &AppError) -> Self {
        ProblemDetails::new(err.code, err.detail().unwrap_or(err.message()))
    }
    /// Sets the trace id.
    pub fn with_trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }
    /// Sets the instance.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }
    /// Adds an extension member (ignored if it would shadow a standard one).
    pub fn with_extension(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        let key = key.into();
        if ![
            "type", "title", "status", "detail", "instance", "code", "trace_id",
        ]
        .contains(&key.as_str())
        {
            self.extensions.insert(key, value);
        }
        self
    }
    /// Passes every free-text member through `masker` (this body leaves the process).
    pub fn masked(mut self, masker: &dyn crate::masking::Masker) -> Self {
        if let Cow::Owned(m) = masker.mask(&self.detail) {
            self.detail = m;
        }
        if let Cow::Owned(m) = masker.mask(&self.title) {
            self.title = m;
        }
        if let Some(instance) = &self.instance
            && let Cow::Owned(m) = masker.mask(instance)
        {
            self.instance = Some(m);
        }
        for (key, value) in self.extensions.iter_mut() {
            if masker.is_secret_key(key) {
                *value = serde_json::Value::String(crate::masking::REDACTED.to_owned());
            } else if let serde_json::Value::String(s) = value
                && let Cow::Owned(m) = masker.mask(s)
            {
                *s = m;
            }
        }
        self
    }
    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            // Serializing strings, numbers and a JSON map cannot fail; keep a
            // valid body regardless.
            format!(
                r#"{{"type":"about:blank","title":"Error","status":{},"detail":"","code":{}}}"#,
                self.status, self.code
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYMENT_DECLINED: ErrorCode =
        ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED)
            .with_title("Payment declined");

    #[test]
    fn code_defaults() {
        assert_eq!(codes::ROUTE_NOT_FOUND.title(), "Not Found");
        assert_eq!(codes::ROUTE_NOT_FOUND.severity(), Severity::Warning);
        assert_eq!(codes::UNAVAILABLE.severity(), Severity::Error);
        assert_eq!(codes::INTERNAL.severity(), Severity::Critical);
        assert_eq!(PAYMENT_DECLINED.title(), "Payment declined");
        assert_eq!(PAYMENT_DECLINED.type_uri(), "about:blank");
        assert_eq!(PAYMENT_DECLINED.to_string(), "2001 PAYMENT_DECLINED");
    }

    #[test]
    fn code_found_through_source_chain_or_none() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] AppError);
        let err = Outer(AppError::new(PAYMENT_DECLINED, "declined"));
        assert_eq!(find_error_code(&err), Some(PAYMENT_DECLINED));

        let plain = std::io::Error::other("disk full");
        assert_eq!(find_error_code(&plain), None);
        let wrapped = AppError::internal(plain);
        assert_eq!(find_error_code(&wrapped), Some(codes::INTERNAL));
        assert!(wrapped.source().is_some());
    }

    #[test]
    fn registered_user_type_is_found_deep_and_unregistered_is_not() {
        const A: ErrorCode = ErrorCode::new(7001, "A", StatusCode::CONFLICT);
        #[derive(Debug, thiserror::Error)]
        #[error("mine")]
        struct Mine;
        impl HasErrorCode for Mine {
            fn error_code(&self) -> Option<ErrorCode> {
                Some(A)
            }
        }
        #[derive(Debug, thiserror::Error)]
        #[error("unregistered")]
        struct Unregistered;
        impl HasErrorCode for Unregistered {
            fn error_code(&self) -> Option<ErrorCode> {
                Some(A)
            }
        }
        #[derive(Debug, thiserror::Error)]
        #[error("wrap")]
        struct Wrap(#[source] Box<dyn StdError + Send + Sync>);

        register_error_type::<Mine>();
        register_error_type::<Mine>();
        assert_eq!(
            find_error_code(&Wrap(Box::new(Wrap(Box::new(Mine))))),
            Some(A)
        );
        assert_eq!(find_error_code(&Wrap(Box::new(Unregistered))), None);
    }

    #[test]
    fn problem_details_serialize_with_extensions() {
        let err = AppError::new(PAYMENT_DECLINED, "card declined").with_detail("try another card");
        let p = ProblemDetails::from_app_error(&err)
            .with_trace_id("0af7651916cd43dd8448eb211c80319c")
            .with_instance("/checkout")
            .with_extension("retry_after", serde_json::json!(30))
            .with_extension("code", serde_json::json!("shadow"));
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Payment declined");
        assert_eq!(v["status"], 402);
        assert_eq!(v["detail"], "try another card");
        assert_eq!(v["instance"], "/checkout");
        assert_eq!(v["code"], 2001);
        assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["retry_after"], 30);
        let back: ProblemDetails = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.status_code(), StatusCode::PAYMENT_REQUIRED);
    }

    #[test]
    fn a_code_made_at_run_time_has_the_same_defaults_and_setters() {
        // `const` codes are evaluated by the compiler; a code may also be
        // made at run time (from a table, say).
        let status = StatusCode::from_u16(503).unwrap();
        let code = ErrorCode::new(3001, "UPSTREAM", status)
            .with_title("Upstream down")
            .with_severity(Severity::Critical)
            .with_type_uri("https://errors.example.com/upstream");
        assert_eq!(code.code(), 3001);
        assert_eq!(code.name(), "UPSTREAM");
        assert_eq!(code.status(), status);
        assert_eq!(code.title(), "Upstream down");
        assert_eq!(code.severity(), Severity::Critical);
        assert_eq!(code.type_uri(), "https://errors.example.com/upstream");
        let plain = ErrorCode::new(3002, "BUSY", StatusCode::from_u16(429).unwrap());
        assert_eq!(plain.severity(), Severity::Warning);
        assert_eq!(plain.title(), "Too Many Requests");
        assert_eq!(
            ErrorCode::new(3003, "DOWN", status).severity(),
            Severity::Error
        );
        let names: Vec<String> = [
            Severity::Debug,
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(names, ["debug", "info", "warning", "error", "critical"]);
    }

    #[test]
    fn an_app_error_shows_its_parts_and_a_cyclic_chain_ends() {
        let err = AppError::new(PAYMENT_DECLINED, "card declined")
            .with_detail("try another card")
            .with_source(std::io::Error::other("gateway timeout"));
        assert_eq!(err.message(), "card declined");
        assert_eq!(err.detail(), Some("try another card"));
        assert_eq!(err.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(err.code(), PAYMENT_DECLINED);
        assert_eq!(err.to_string(), "card declined");
        assert_eq!(err.error_code(), Some(PAYMENT_DECLINED));
        let debug = format!("{err:?}");
        assert!(
            debug.contains("2001")
                && debug.contains("PAYMENT_DECLINED")
                && debug.contains("gateway timeout"),
            "{debug}"
        );

        // An error that is its own source: the walk stops instead of looping.
        #[derive(Debug)]
        struct Cycle;
        impl fmt::Display for Cycle {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("cycle")
            }
        }
        impl StdError for Cycle {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&Cycle)
            }
        }
        assert_eq!(find_error_code(&Cycle), None);
    }

    #[test]
    fn problem_details_mask_title_and_instance_and_keep_a_valid_status() {
        let config = crate::config::TracingConfig::builder()
            .pii_pattern("acct", r"ACCT-\d+")
            .build()
            .unwrap();
        let masker = crate::masking::BasicMasker::from_config(&config);
        let mut p = ProblemDetails::new(PAYMENT_DECLINED, "declined")
            .with_instance("/accounts/ACCT-42")
            .with_extension("count", serde_json::json!(3));
        p.title = "Declined for ACCT-42".to_owned();
        let p = p.masked(&masker);
        assert_eq!(p.title, "Declined for [REDACTED]");
        assert_eq!(p.instance.as_deref(), Some("/accounts/[REDACTED]"));
        assert_eq!(p.extensions["count"], 3);
        let mut odd = ProblemDetails::new(PAYMENT_DECLINED, "x");
        odd.status = 42;
        assert_eq!(odd.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn problem_details_masked() {
        let config = crate::config::TracingConfig::builder()
            .pii_pattern("acct", r"ACCT-\d+")
            .build()
            .unwrap();
        let masker = crate::masking::BasicMasker::from_config(&config);
        let p = ProblemDetails::new(PAYMENT_DECLINED, "account ACCT-99 declined")
            .with_extension("api_key", serde_json::json!("k-123"))
            .with_extension("note", serde_json::json!("ACCT-7"))
            .masked(&masker);
        assert_eq!(p.detail, "account [REDACTED] declined");
        assert_eq!(p.extensions["api_key"], "[REDACTED]");
        assert_eq!(p.extensions["note"], "[REDACTED]");
    }
}
