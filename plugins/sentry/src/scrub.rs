//! The `before_send` and `before_breadcrumb` hooks: every string of an
//! event passes through the engine's masker before the event is queued.
//!
//! What is dropped rather than masked: secret-keyed headers (the masker's
//! secret keys: `Authorization`, `Cookie`, `Set-Cookie`, `X-Api-Key`, ...),
//! headers and environment entries that carry a client's address
//! (`X-Forwarded-For`, `REMOTE_ADDR`, ...), request and response cookies,
//! and every field of `user` but its (masked) `id`. Values under secret keys
//! in any map become [`REDACTED`]. Trace and span ids, event ids,
//! timestamps and levels are left as they are.

use std::borrow::Cow;

use faultline_engine::masking::{Masker, REDACTED, mask_query};
use faultline_engine::percent;
use sentry::protocol::{
    Breadcrumb, Context, Event, Exception, Frame, LogEntry, Map, Request, Stacktrace, TemplateInfo,
    Thread, User, Value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Header and environment names (lowercase, `_` read as `-`) whose values
/// locate a client: dropped whatever the masker says.
const ADDRESS_KEYS: &[&str] = &[
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "remote-addr",
    "http-x-forwarded-for",
    "http-x-real-ip",
];

fn is_address_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('_', "-");
    ADDRESS_KEYS.contains(&k.as_str())
}

/// `s` masked under `key` when that changes it (a secret key's value comes
/// back as a borrowed [`REDACTED`], so borrowed does not mean unchanged).
fn masked_value(masker: &dyn Masker, key: Option<&str>, s: &str) -> Option<String> {
    let masked = match key {
        Some(k) => masker.mask_value(k, s),
        None => masker.mask(s),
    };
    (masked != s).then(|| masked.into_owned())
}

fn mask_string(masker: &dyn Masker, s: &mut String) {
    if let Cow::Owned(m) = masker.mask(s) {
        *s = m;
    }
}

fn mask_opt(masker: &dyn Masker, s: &mut Option<String>) {
    if let Some(s) = s {
        mask_string(masker, s);
    }
}

fn mask_cow(masker: &dyn Masker, s: &mut Option<Cow<'static, str>>) {
    if let Some(v) = s
        && let Cow::Owned(m) = masker.mask(v)
    {
        *v = Cow::Owned(m);
    }
}

/// Masks a JSON value found under `key`. Numbers are masked as text too
/// (`{"card": 4111111111111111}`) when `numbers` is set; they stay numbers
/// when nothing in them is personal.
fn mask_json(masker: &dyn Masker, key: Option<&str>, value: &mut Value, numbers: bool) {
    match value {
        Value::String(s) => {
            if let Some(m) = masked_value(masker, key, s) {
                *s = m;
            }
        }
        Value::Number(n) if numbers => {
            if let Some(m) = masked_value(masker, key, &n.to_string()) {
                *value = Value::String(m);
            }
        }
        Value::Array(items) => {
            for item in items {
                mask_json(masker, key, item, numbers);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if masker.is_secret_key(k) && !v.is_null() {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    mask_json(masker, Some(k), v, numbers);
                }
            }
        }
        _ => {}
    }
}

fn mask_map(masker: &dyn Masker, map: &mut Map<String, Value>) {
    for (k, v) in map.iter_mut() {
        if masker.is_secret_key(k) {
            *v = Value::String(REDACTED.to_owned());
        } else {
            mask_json(masker, Some(k), v, true);
        }
    }
}

fn mask_string_map(masker: &dyn Masker, map: &mut Map<String, String>) {
    for (k, v) in map.iter_mut() {
        if let Some(m) = masked_value(masker, Some(k), v) {
            *v = m;
        }
    }
}

/// Masks the strings of a typed value through its JSON form; `false` when
/// the value did not survive the round trip (the caller then drops it).
fn mask_typed<T: Serialize + DeserializeOwned>(masker: &dyn Masker, value: &mut T) -> bool {
    let Ok(mut json) = serde_json::to_value(&*value) else {
        return false;
    };
    // Only strings: typed numbers (memory sizes, versions) stay numbers.
    mask_json(masker, None, &mut json, false);
    match serde_json::from_value(json) {
        Ok(v) => {
            *value = v;
            true
        }
        Err(_) => false,
    }
}

fn mask_frame(masker: &dyn Masker, frame: &mut Frame) {
    for s in [
        &mut frame.function,
        &mut frame.symbol,
        &mut frame.module,
        &mut frame.package,
        &mut frame.filename,
        &mut frame.abs_path,
        &mut frame.context_line,
    ] {
        mask_opt(masker, s);
    }
    for line in frame.pre_context.iter_mut().chain(&mut frame.post_context) {
        mask_string(masker, line);
    }
    mask_map(masker, &mut frame.vars);
}

fn mask_stacktrace(masker: &dyn Masker, stacktrace: &mut Option<Stacktrace>) {
    if let Some(st) = stacktrace {
        for frame in &mut st.frames {
            mask_frame(masker, frame);
        }
    }
}

fn mask_exception(masker: &dyn Masker, e: &mut Exception) {
    mask_string(masker, &mut e.ty);
    mask_opt(masker, &mut e.value);
    mask_opt(masker, &mut e.module);
    mask_stacktrace(masker, &mut e.stacktrace);
    mask_stacktrace(masker, &mut e.raw_stacktrace);
    if let Some(m) = &mut e.mechanism {
        mask_opt(masker, &mut m.description);
        mask_map(masker, &mut m.data);
    }
}

fn mask_thread(masker: &dyn Masker, t: &mut Thread) {
    mask_opt(masker, &mut t.name);
    mask_stacktrace(masker, &mut t.stacktrace);
    mask_stacktrace(masker, &mut t.raw_stacktrace);
}

fn mask_template(masker: &dyn Masker, t: &mut TemplateInfo) {
    mask_opt(masker, &mut t.filename);
    mask_opt(masker, &mut t.abs_path);
    mask_opt(masker, &mut t.context_line);
    for line in t.pre_context.iter_mut().chain(&mut t.post_context) {
        mask_string(masker, line);
    }
}

fn mask_logentry(masker: &dyn Masker, l: &mut LogEntry) {
    mask_string(masker, &mut l.message);
    for p in &mut l.params {
        mask_json(masker, None, p, true);
    }
}

/// Keeps only the (masked) id: email, IP address, username and the free
/// fields are personal by definition.
fn mask_user(masker: &dyn Masker, user: Option<User>) -> Option<User> {
    let mut id = user?.id?;
    if let Some(m) = masked_value(masker, Some("user.id"), &id) {
        id = m;
    }
    Some(User {
        id: Some(id),
        ..Default::default()
    })
}

fn mask_headers(masker: &dyn Masker, headers: &mut Map<String, String>) {
    headers.retain(|name, _| !masker.is_secret_key(name) && !is_address_key(name));
    mask_string_map(masker, headers);
}

fn mask_request(masker: &dyn Masker, r: &mut Request) {
    if let Some(url) = r.url.take() {
        r.url = mask_url(masker, url);
    }
    mask_opt(masker, &mut r.method);
    mask_opt(masker, &mut r.data);
    if let Some(q) = &r.query_string {
        r.query_string = Some(mask_query(masker, q).into_owned());
    }
    r.cookies = None;
    mask_headers(masker, &mut r.headers);
    r.env.retain(|k, _| !is_address_key(k));
    mask_string_map(masker, &mut r.env);
}

/// The URL without credentials or fragment, its path masked and each query
/// value masked under its key. `None` when the masked URL does not parse.
fn mask_url(masker: &dyn Masker, mut url: sentry::protocol::Url) -> Option<sentry::protocol::Url> {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    let path = percent::decode_lossy(url.path());
    if let Cow::Owned(m) = masker.mask(&path) {
        // Written back encoded, so that it reads as what was masked.
        url.set_path(&percent::encode_path(&m));
    }
    if let Some(q) = url.query().map(|q| mask_query(masker, q).into_owned()) {
        url.set_query(Some(&q));
    }
    // The host stays: it names the service, not a person.
    Some(url)
}

fn mask_context(masker: &dyn Masker, context: &mut Context) -> bool {
    match context {
        Context::Trace(t) => {
            // The ids are the trace's identity: only the free text is masked.
            mask_opt(masker, &mut t.op);
            mask_opt(masker, &mut t.description);
            mask_opt(masker, &mut t.origin);
            mask_map(masker, &mut t.data);
            true
        }
        Context::Response(r) => {
            r.cookies = None;
            mask_headers(masker, &mut r.headers);
            if let Some(data) = &mut r.data {
                mask_json(masker, None, data, true);
            }
            true
        }
        Context::Other(map) => {
            mask_map(masker, map);
            true
        }
        Context::Device(c) => mask_typed(masker, &mut **c),
        Context::Os(c) => mask_typed(masker, &mut **c),
        Context::Runtime(c) => mask_typed(masker, &mut **c),
        Context::App(c) => mask_typed(masker, &mut **c),
        Context::Browser(c) => mask_typed(masker, &mut **c),
        Context::Gpu(c) => mask_typed(masker, &mut **c),
        Context::Otel(c) => mask_typed(masker, &mut **c),
        // A kind added by a later sentry: masked through its JSON form, or
        // dropped.
        other => mask_typed(masker, other),
    }
}

/// Masks every string of a breadcrumb: message, category, type and data
/// (values under secret keys redacted).
pub fn mask_breadcrumb(masker: &dyn Masker, mut breadcrumb: Breadcrumb) -> Breadcrumb {
    mask_string(masker, &mut breadcrumb.ty);
    mask_opt(masker, &mut breadcrumb.category);
    mask_opt(masker, &mut breadcrumb.message);
    mask_map(masker, &mut breadcrumb.data);
    breadcrumb
}

/// Masks every string of an event with `masker`: message and log entry,
/// exceptions (type, value, mechanism, stack frames), threads, breadcrumbs,
/// `extra`, tags, contexts (the trace context's ids excepted), request
/// (URL path and query, body, query string, headers, environment),
/// transaction, culprit, fingerprint, logger, server name, release and
/// environment. Drops secret-keyed and address-carrying headers, cookies
/// and every `user` field but the masked id.
///
/// This is the client's `before_send` hook; it is public so that
/// applications with their own client can apply the same rules.
pub fn mask_event(masker: &dyn Masker, mut event: Event<'static>) -> Event<'static> {
    mask_opt(masker, &mut event.message);
    if let Some(l) = &mut event.logentry {
        mask_logentry(masker, l);
    }
    mask_opt(masker, &mut event.culprit);
    mask_opt(masker, &mut event.transaction);
    mask_opt(masker, &mut event.logger);
    mask_cow(masker, &mut event.server_name);
    mask_cow(masker, &mut event.release);
    mask_cow(masker, &mut event.dist);
    mask_cow(masker, &mut event.environment);
    if event.fingerprint.iter().any(|f| masker.mask(f) != *f) {
        let masked: Vec<Cow<'static, str>> = event
            .fingerprint
            .iter()
            .map(|f| Cow::Owned(masker.mask(f).into_owned()))
            .collect();
        event.fingerprint = Cow::Owned(masked);
    }
    for e in &mut event.exception.values {
        mask_exception(masker, e);
    }
    for t in &mut event.threads.values {
        mask_thread(masker, t);
    }
    mask_stacktrace(masker, &mut event.stacktrace);
    if let Some(t) = &mut event.template {
        mask_template(masker, t);
    }
    let crumbs = std::mem::take(&mut event.breadcrumbs.values);
    event.breadcrumbs.values = crumbs
        .into_iter()
        .map(|b| mask_breadcrumb(masker, b))
        .collect();
    mask_map(masker, &mut event.extra);
    mask_string_map(masker, &mut event.tags);
    event
        .contexts
        .retain(|_, context| mask_context(masker, context));
    event.user = mask_user(masker, event.user.take());
    if let Some(r) = &mut event.request {
        mask_request(masker, r);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::config::TracingConfig;
    use sentry::protocol::{
        AppContext, DeviceContext, Mechanism, OsContext, ResponseContext, TraceContext, Url,
    };

    const EMAIL: &str = "jane.doe@example.com";
    const CARD: &str = "4111 1111 1111 1111";
    const CARD_DIGITS: &str = "4111111111111111";
    const PHONE: &str = "+1 415 555 0134";
    const SSN: &str = "123-45-6789";
    const BEARER: &str = "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig";

    fn masker() -> std::sync::Arc<dyn Masker> {
        faultline_engine::masking::from_config(&TracingConfig::default())
    }

    fn pii() -> String {
        format!("mail {EMAIL} card {CARD} phone {PHONE} ssn {SSN}")
    }

    fn obj(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn frame() -> Frame {
        Frame {
            function: Some(format!("handler for {EMAIL}")),
            context_line: Some(pii()),
            pre_context: vec![pii()],
            post_context: vec![pii()],
            vars: obj(&[
                ("customer", Value::String(pii())),
                ("api_key", Value::String("k-123456".into())),
            ]),
            ..Default::default()
        }
    }

    /// An event with the personal items in every field a user could fill.
    fn event_full_of_pii() -> Event<'static> {
        let mut event = Event {
            message: Some(pii()),
            logentry: Some(LogEntry {
                message: pii(),
                params: vec![
                    Value::String(pii()),
                    serde_json::json!(4111111111111111_u64),
                ],
            }),
            culprit: Some(pii()),
            transaction: Some(format!("GET /users/{EMAIL}")),
            logger: Some(pii()),
            fingerprint: Cow::Owned(vec![Cow::Owned(pii())]),
            server_name: Some(Cow::Owned(format!("host-of-{EMAIL}"))),
            ..Default::default()
        };
        event.exception.values.push(Exception {
            ty: "PaymentError".into(),
            value: Some(pii()),
            module: Some(pii()),
            stacktrace: Some(Stacktrace {
                frames: vec![frame()],
                ..Default::default()
            }),
            mechanism: Some(Mechanism {
                ty: "generic".into(),
                description: Some(pii()),
                data: obj(&[("input", Value::String(pii()))]),
                ..Default::default()
            }),
            ..Default::default()
        });
        event.threads.values.push(Thread {
            name: Some(pii()),
            stacktrace: Some(Stacktrace {
                frames: vec![frame()],
                ..Default::default()
            }),
            ..Default::default()
        });
        event.stacktrace = Some(Stacktrace {
            frames: vec![frame()],
            ..Default::default()
        });
        event.template = Some(TemplateInfo {
            context_line: Some(pii()),
            pre_context: vec![pii()],
            ..Default::default()
        });
        event.breadcrumbs.values.push(Breadcrumb {
            message: Some(pii()),
            category: Some(pii()),
            data: obj(&[
                ("body", Value::String(pii())),
                ("password", Value::String("hunter2hunter2".into())),
                (
                    "nested",
                    serde_json::json!({"list": [pii()], "card": 4111111111111111_u64}),
                ),
            ]),
            ..Default::default()
        });
        event.extra = obj(&[
            ("note", Value::String(pii())),
            ("card_number", serde_json::json!(4111111111111111_u64)),
            ("raw_card", serde_json::json!(4111111111111111_u64)),
            ("token", Value::String("tok_live_abcdef".into())),
            ("deep", serde_json::json!({"a": {"b": [pii()]}})),
        ]);
        event.tags.insert("customer".into(), EMAIL.into());
        event.tags.insert("phone".into(), PHONE.into());
        event
            .tags
            .insert("session_id".into(), "s3cr3t-session".into());
        event.tags.insert("http.route".into(), "/users/{id}".into());
        event.contexts.insert(
            "trace".into(),
            Context::Trace(Box::new(TraceContext {
                trace_id: [0x4b; 16].into(),
                span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7].into(),
                description: Some(pii()),
                data: obj(&[("q", Value::String(pii()))]),
                ..Default::default()
            })),
        );
        event.contexts.insert(
            "customer".into(),
            Context::Other(obj(&[
                ("email", Value::String(EMAIL.into())),
                ("note", Value::String(pii())),
            ])),
        );
        event.contexts.insert(
            "device".into(),
            Context::Device(Box::new(DeviceContext {
                name: Some(format!("{EMAIL}'s laptop")),
                memory_size: Some(17_179_869_184),
                other: obj(&[("owner", Value::String(pii()))]),
                ..Default::default()
            })),
        );
        event.contexts.insert(
            "os".into(),
            Context::Os(Box::new(OsContext {
                name: Some("Linux".into()),
                build: Some(pii()),
                ..Default::default()
            })),
        );
        event.contexts.insert(
            "app".into(),
            Context::App(Box::new(AppContext {
                app_name: Some(pii()),
                ..Default::default()
            })),
        );
        let mut response = ResponseContext {
            cookies: Some(format!("sid=abc; email={EMAIL}")),
            data: Some(Value::String(pii())),
            status_code: Some(500),
            ..Default::default()
        };
        response
            .headers
            .insert("Set-Cookie".into(), "sid=s3cr3t-session".into());
        response.headers.insert("X-Note".into(), pii());
        event
            .contexts
            .insert("response".into(), Context::Response(Box::new(response)));
        event.user = Some(User {
            id: Some(format!("user 42 {EMAIL}")),
            email: Some(EMAIL.into()),
            ip_address: Some("203.0.113.9".parse().unwrap()),
            username: Some("janedoe-the-user".into()),
            other: obj(&[("phone", Value::String(PHONE.into()))]),
        });
        let mut request = Request {
            url: Some(
                Url::parse(&format!(
                    "https://alice:pa55word@shop.example.com/users/{EMAIL}/cards?card={CARD_DIGITS}&api_key=k-123456&q=hello#{EMAIL}"
                ))
                .unwrap(),
            ),
            method: Some("POST".into()),
            data: Some(format!(r#"{{"email":"{EMAIL}","card":"{CARD}","password":"hunter2hunter2"}}"#)),
            query_string: Some(format!("email={}&phone={PHONE}&token=tok_live_abcdef", EMAIL.replace('@', "%40"))),
            cookies: Some("sid=s3cr3t-session".into()),
            ..Default::default()
        };
        for (k, v) in [
            ("Authorization", BEARER),
            ("Cookie", "sid=s3cr3t-session"),
            ("Set-Cookie", "sid=s3cr3t-session"),
            ("X-Api-Key", "k-123456"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Customer", EMAIL),
            ("User-Agent", "curl/8"),
        ] {
            request.headers.insert(k.into(), v.into());
        }
        request
            .env
            .insert("REMOTE_ADDR".into(), "203.0.113.9".into());
        request.env.insert("NOTE".into(), pii());
        event.request = Some(request);
        event
    }

    fn raw_items() -> Vec<&'static str> {
        vec![
            EMAIL,
            CARD,
            CARD_DIGITS,
            PHONE,
            "415 555 0134",
            SSN,
            "eyJhbGciOiJIUzI1NiJ9",
            "s3cr3t-session",
            "k-123456",
            "hunter2hunter2",
            "tok_live_abcdef",
            "pa55word",
            "203.0.113.9",
            "janedoe-the-user",
            "jane.doe%40example.com",
        ]
    }

    #[test]
    fn before_send_leaves_no_raw_pii_in_any_field() {
        let masker = masker();
        let original = event_full_of_pii();
        let before = serde_json::to_string(&original).unwrap();
        for item in [EMAIL, CARD, PHONE, SSN, "k-123456", "203.0.113.9"] {
            assert!(before.contains(item), "the fixture holds {item}");
        }
        let masked = mask_event(&*masker, original);
        let json = serde_json::to_string(&masked).unwrap();
        for item in raw_items() {
            assert!(!json.contains(item), "{item} left in {json}");
        }
        // What is kept, kept right.
        assert_eq!(masked.tags["http.route"], "/users/{id}");
        assert_eq!(masked.tags["session_id"], REDACTED);
        assert_eq!(masked.extra["token"], REDACTED);
        assert_eq!(masked.extra["card_number"], REDACTED);
        assert_eq!(masked.extra["raw_card"], "****-****-****-1111");
        let Some(Context::Trace(t)) = masked.contexts.get("trace") else {
            panic!("trace context dropped")
        };
        assert_eq!(t.trace_id.to_string(), "4b".repeat(16));
        assert_eq!(t.span_id.to_string(), "00f067aa0ba902b7");
        let Some(Context::Device(d)) = masked.contexts.get("device") else {
            panic!("device context dropped")
        };
        assert_eq!(d.memory_size, Some(17_179_869_184));
        let Some(Context::Os(os)) = masked.contexts.get("os") else {
            panic!("os context dropped")
        };
        assert_eq!(os.name.as_deref(), Some("Linux"));
        let request = masked.request.as_ref().unwrap();
        assert_eq!(request.method.as_deref(), Some("POST"));
        assert_eq!(
            request.headers.get("User-Agent").map(String::as_str),
            Some("curl/8")
        );
        for dropped in [
            "Authorization",
            "Cookie",
            "Set-Cookie",
            "X-Api-Key",
            "X-Forwarded-For",
        ] {
            assert!(!request.headers.contains_key(dropped), "{dropped} kept");
        }
        assert!(request.cookies.is_none());
        assert!(!request.env.contains_key("REMOTE_ADDR"));
        let url = request.url.as_ref().unwrap();
        assert_eq!(url.host_str(), Some("shop.example.com"));
        assert_eq!(url.username(), "");
        assert!(url.fragment().is_none());
        assert!(url.query().unwrap().contains("q=hello"), "{url}");
        let user = masked.user.as_ref().unwrap();
        assert!(user.email.is_none() && user.ip_address.is_none() && user.username.is_none());
        assert!(user.other.is_empty());
        assert_eq!(user.id.as_deref(), Some("user 42 j***@example.com"));
    }

    #[test]
    fn masking_is_stable_and_leaves_clean_events_alone() {
        let masker = masker();
        let once = mask_event(&*masker, event_full_of_pii());
        let first = serde_json::to_value(&once).unwrap();
        let twice = mask_event(&*masker, once);
        assert_eq!(serde_json::to_value(&twice).unwrap(), first);

        let mut clean = Event {
            message: Some("GET /health took 3.2 ms".into()),
            transaction: Some("GET /users/{id}".into()),
            ..Default::default()
        };
        clean.tags.insert("error.code".into(), "1001".into());
        clean.extra.insert("attempt".into(), serde_json::json!(3));
        let before = serde_json::to_value(&clean).unwrap();
        let after = serde_json::to_value(mask_event(&*masker, clean)).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn breadcrumbs_are_masked_by_their_own_hook() {
        let masker = masker();
        let crumb = Breadcrumb {
            ty: "http".into(),
            category: Some(format!("signup {EMAIL}")),
            message: Some(pii()),
            data: obj(&[
                ("url", Value::String(format!("/u?email={EMAIL}"))),
                ("authorization", Value::String(BEARER.into())),
            ]),
            ..Default::default()
        };
        let masked = mask_breadcrumb(&*masker, crumb);
        let json = serde_json::to_string(&masked).unwrap();
        for item in raw_items() {
            assert!(!json.contains(item), "{item} left in {json}");
        }
        assert_eq!(masked.data["authorization"], REDACTED);
        assert_eq!(masked.ty, "http");
    }

    #[test]
    fn a_user_without_id_disappears() {
        let masker = masker();
        let event = Event {
            user: Some(User {
                email: Some(EMAIL.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(mask_event(&*masker, event).user.is_none());
    }

    #[test]
    fn items_before_sentence_punctuation_are_masked() {
        let masker = faultline_engine::masking::from_config(&TracingConfig::default());
        let event = Event {
            message: Some(
                "Card on file is 4111111111111111. Write to b@xn--80ak6aa92e.xn--p1ai.".into(),
            ),
            ..Default::default()
        };
        assert_eq!(
            mask_event(&*masker, event).message.as_deref(),
            Some("Card on file is ****-****-****-1111. Write to b***@xn--80ak6aa92e.xn--p1ai.")
        );
    }

    #[test]
    fn written_back_encoded() {
        // A value that needs its escapes keeps them, masked or not: the
        // query string, the URL's query and its path read as what was masked.
        let masker = faultline_engine::masking::from_config(&TracingConfig::default());
        let event = Event {
            request: Some(Request {
                url: Some(
                    Url::parse(&format!(
                        "https://shop.example.com/a%26b/{}?q=a%26b&e={}&n=a%2Bb",
                        EMAIL.replace('@', "%40"),
                        EMAIL.replace('@', "%40")
                    ))
                    .unwrap(),
                ),
                query_string: Some(format!("q=a%26b&e={}&n=a%2Bb", EMAIL.replace('@', "%40"))),
                ..Default::default()
            }),
            ..Default::default()
        };
        let masked = mask_event(&*masker, event);
        let request = masked.request.unwrap();
        assert_eq!(
            request.query_string.as_deref(),
            Some("q=a%26b&e=j***@example.com&n=a%2Bb")
        );
        let url = request.url.unwrap();
        assert_eq!(url.query(), Some("q=a%26b&e=j***@example.com&n=a%2Bb"));
        assert_eq!(url.path(), "/a%26b/j***@example.com");
        // Unchanged, it is left as written.
        let clean = Event {
            request: Some(Request {
                query_string: Some("q=a%26b".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let clean = mask_event(&*masker, clean);
        assert_eq!(
            clean.request.unwrap().query_string.as_deref(),
            Some("q=a%26b")
        );
    }
}
