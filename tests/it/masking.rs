//! The PII masker on realistic text: a corpus of log lines, JSON payloads and
//! attribute values with personal data (every item must go, masked exactly
//! as documented) and without (at most 1% may change at all); then every
//! surface of the engine, end to end, down to the bytes an exporter receives.
//!
//! The corpus is `tests/it/data/pii.jsonl` and `tests/it/data/clean.txt`,
//! written by `tests/it/data/generate.py` (seeded), which works out each
//! expected mask from where it put each item, never by running the masker.

use std::borrow::Cow;
use std::time::Duration;

use faultline::config::TracingConfig;
use faultline::error::{AppError, ErrorCode, ProblemDetails};
use faultline::exception::Failure;
use faultline::export::InMemoryExporter;
use faultline::masking::{Masker, PiiMasker};
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _};
use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;

use crate::common::{memory_engine, quiet_config};

const PII: &str = include_str!("data/pii.jsonl");
const CLEAN: &str = include_str!("data/clean.txt");
const WAIT: Duration = Duration::from_secs(10);

#[derive(serde::Deserialize)]
struct Record {
    text: String,
    masked: String,
    items: Vec<String>,
}

fn default_masker() -> PiiMasker {
    PiiMasker::from_config(&TracingConfig::default())
}

/// The value of `span`'s attribute `key`, as text.
fn attribute(span: &SpanData, key: &str) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn corpus_recall_is_total_and_masks_are_exact() {
    let masker = default_masker();
    let records: Vec<Record> = PII
        .lines()
        .map(|l| serde_json::from_str(l).expect("a corpus record"))
        .collect();
    assert!(records.len() >= 300, "{} records", records.len());
    let (mut items, mut gone, mut exact) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for r in &records {
        let masked = masker.mask(&r.text);
        for item in &r.items {
            items += 1;
            if masked.contains(item.as_str()) {
                failures.push(format!("raw item {item:?} survived in {masked:?}"));
            } else {
                gone += 1;
            }
        }
        if masked == r.masked {
            exact += 1;
        } else {
            failures.push(format!(
                "text:     {:?}\n  got:      {masked:?}\n  expected: {:?}",
                r.text, r.masked
            ));
        }
        assert_eq!(
            masker.mask(&masked),
            masked,
            "masking twice changed {:?}",
            r.text
        );
    }
    let recall = gone as f64 / items as f64;
    println!(
        "PII corpus: {} texts, {items} personal items; recall {recall:.4} ({gone}/{items}); \
         masked exactly as specified: {exact}/{}",
        records.len(),
        records.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(recall, 1.0);
}

#[test]
fn corpus_texts_without_personal_data_stay_unchanged() {
    let masker = default_masker();
    let lines: Vec<&str> = CLEAN.lines().collect();
    assert!(lines.len() >= 1000, "{} lines", lines.len());
    let mut changed = Vec::new();
    let mut copied = 0;
    for line in &lines {
        match masker.mask(line) {
            Cow::Borrowed(_) => {}
            Cow::Owned(m) if m == *line => copied += 1,
            Cow::Owned(m) => changed.push(format!("{line:?}\n  -> {m:?}")),
        }
    }
    let rate = changed.len() as f64 / lines.len() as f64;
    println!(
        "PII-free corpus: {} texts, {} changed ({:.2}%), {copied} copied unchanged",
        lines.len(),
        changed.len(),
        rate * 100.0
    );
    for c in &changed {
        println!("  changed: {c}");
    }
    assert_eq!(copied, 0, "an unchanged text must come back borrowed");
    assert!(rate <= 0.01, "{} of {} changed", changed.len(), lines.len());
}

const DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", http::StatusCode::PAYMENT_REQUIRED);

/// Known personal data and secrets in every surface the engine has; the
/// exporter must receive none of it, and the masks exactly as documented.
#[test]
fn every_engine_surface_reaches_the_exporter_masked() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);

    let raw: &[&str] = &[
        "jane.doe@example.com",
        "jane.doe%40example.com",
        "alice@example.com",
        "bob.smith@example.org",
        "+4915112345678",
        "%2B4915112345678",
        "(555) 123-4567",
        "555-987-6543",
        "4111 1111 1111 1111",
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "123-45-6789",
        "987 65 4321",
        "hunter2",
        "Bearer eyJhbGciOiJIUzI1NiJ9",
        "sess-7f3a9c",
        "tok-abc123",
        "s3cr3t-pw",
    ];

    let cx = engine.start_server_span(
        "POST /users/jane.doe@example.com/cards",
        vec![
            KeyValue::new("app.customer.email", "jane.doe@example.com"),
            KeyValue::new("app.customer.phone", "+4915112345678"),
            KeyValue::new("app.payment.card", "4111 1111 1111 1111"),
            KeyValue::new("app.customer.note", "SSN 123-45-6789, call (555) 123-4567"),
            KeyValue::new("app.payment.card_as_int", 5555555555554444_i64),
            KeyValue::new("user.password", "hunter2"),
            KeyValue::new(
                "http.request.header.authorization",
                Value::Array(vec![StringValue::from("Bearer eyJhbGciOiJIUzI1NiJ9")].into()),
            ),
            KeyValue::new(
                "http.request.header.cookie",
                "session=sess-7f3a9c; theme=dark",
            ),
            KeyValue::new(
                "url.query",
                "email=jane.doe%40example.com&phone=%2B4915112345678&token=tok-abc123&page=2",
            ),
            KeyValue::new(
                "url.full",
                "https://shop.example/checkout?card=378282246310005&lang=en",
            ),
            KeyValue::new(
                "db.statement",
                "UPDATE users SET tax_ref = '987 65 4321' WHERE id = 42",
            ),
            KeyValue::new(
                "app.log",
                r#"{"user":"bob.smith@example.org","password":"s3cr3t-pw"}"#,
            ),
        ],
        &http::HeaderMap::new(),
    );
    let span = cx.span();
    span.add_event(
        "checkout.contact jane.doe@example.com",
        vec![
            KeyValue::new("message", "left a voicemail at 555-987-6543"),
            KeyValue::new("card", "4111111111111111"),
        ],
    );
    let err = AppError::new(
        DECLINED,
        "card 4111111111111111 declined for jane.doe@example.com",
    );
    engine.record_failure(&cx, &Failure::error(&err));
    engine.record_failure(
        &cx,
        &Failure::Panic {
            message: "payment worker crashed for alice@example.com",
            location: Some("src/payments.rs:42:9"),
            backtrace: None,
        },
    );
    span.end();

    // A status description and a name set through the plain API.
    let mut other = engine.tracer().start("refund for bob.smith@example.org");
    other.set_status(Status::error(
        "refund to 5555555555554444 failed, call 555-987-6543",
    ));
    other.end();

    engine.force_flush();
    let exported = spans.wait_for(2, WAIT);
    assert_eq!(exported.len(), 2);
    let bytes = format!("{exported:?}");
    for item in raw {
        assert!(
            !bytes.contains(item),
            "{item:?} reached the exporter:\n{bytes}"
        );
    }

    let server = exported
        .iter()
        .find(|s| s.name.starts_with("POST"))
        .unwrap();
    let attr = |key: &str| attribute(server, key);
    assert_eq!(server.name, "POST /users/j***@example.com/cards");
    assert_eq!(attr("app.customer.email"), "j***@example.com");
    assert_eq!(attr("app.customer.phone"), "***-***-5678");
    assert_eq!(attr("app.payment.card"), "****-****-****-1111");
    assert_eq!(
        attr("app.customer.note"),
        "SSN ***-**-****, call ***-***-4567"
    );
    assert_eq!(attr("app.payment.card_as_int"), "****-****-****-4444");
    assert_eq!(attr("user.password"), "[REDACTED]");
    // A list (a captured header's values) stays a list, a text a text.
    assert_eq!(
        attr("http.request.header.authorization"),
        r#"["[REDACTED]"]"#
    );
    assert_eq!(attr("http.request.header.cookie"), "[REDACTED]");
    assert_eq!(
        attr("url.query"),
        "email=j***@example.com&phone=***-***-5678&token=[REDACTED]&page=2"
    );
    assert_eq!(
        attr("url.full"),
        "https://shop.example/checkout?card=****-****-****-0005&lang=en"
    );
    assert_eq!(
        attr("db.statement"),
        "UPDATE users SET tax_ref = '***-**-****' WHERE id = 42"
    );
    assert_eq!(
        attr("app.log"),
        r#"{"user":"b***@example.org","password":"[REDACTED]"}"#
    );

    let contact = &server.events[0];
    assert_eq!(contact.name, "checkout.contact j***@example.com");
    assert_eq!(
        contact.attributes[0].value.as_str(),
        "left a voicemail at ***-***-6543"
    );
    assert_eq!(contact.attributes[1].value.as_str(), "****-****-****-1111");
    let exception = |i: usize, key: &str| {
        server.events[i]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
            .unwrap()
    };
    assert_eq!(server.events[1].name, "exception");
    assert_eq!(
        exception(1, "exception.message"),
        "card ****-****-****-1111 declined for j***@example.com"
    );
    assert_eq!(server.events[2].name, "exception");
    assert_eq!(
        exception(2, "exception.message"),
        "payment worker crashed for a***@example.com"
    );
    assert_eq!(
        server.status,
        Status::error("payment worker crashed for a***@example.com")
    );

    let refund = exported
        .iter()
        .find(|s| s.name.starts_with("refund"))
        .unwrap();
    assert_eq!(refund.name, "refund for b***@example.org");
    assert_eq!(
        refund.status,
        Status::error("refund to ****-****-****-4444 failed, call ***-***-6543")
    );
    engine.shutdown();
}

/// The keyed-hash mode through the engine: equal values, equal tags, across
/// spans; no raw value leaves.
#[test]
fn keyed_hash_mode_correlates_across_spans() {
    let spans = InMemoryExporter::default();
    let config = quiet_config()
        .pii_hash_key("integration-test-key-0123456789")
        .build()
        .unwrap();
    let engine = memory_engine(config, &spans);
    for name in ["first", "second"] {
        let mut span = engine.tracer().start(name);
        span.set_attribute(KeyValue::new("customer", "jane.doe@example.com"));
        span.set_attribute(KeyValue::new("card", "4111 1111 1111 1111"));
        span.end();
    }
    engine.force_flush();
    let exported = spans.wait_for(2, WAIT);
    let bytes = format!("{exported:?}");
    assert!(
        !bytes.contains("jane.doe") && !bytes.contains("4111 1111"),
        "{bytes}"
    );
    let value = |i: usize, key: &str| {
        exported[i]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .unwrap()
            .value
            .to_string()
    };
    assert!(value(0, "customer").starts_with("email:hmac:"));
    assert!(value(0, "card").starts_with("card:hmac:"));
    assert_eq!(value(0, "customer"), value(1, "customer"));
    assert_eq!(value(0, "card"), value(1, "card"));
    engine.shutdown();
}

/// Sentences whose personal items end right before punctuation (issue 19),
/// an email under an A-label domain, and a grouped number failing Luhn as a
/// whole, with what each must become wherever it leaves the process.
const SENTENCES: &[(&str, &str)] = &[
    (
        "Card on file is 4111111111111111.",
        "Card on file is ****-****-****-1111.",
    ),
    (
        "Amex 378282246310005, thanks!",
        "Amex ****-****-****-0005, thanks!",
    ),
    ("(card 5555555555554444)", "(card ****-****-****-4444)"),
    (
        "call 555-123-4567; or +4915112345678?",
        "call ***-***-4567; or ***-***-5678?",
    ),
    ("phone 5551234567.", "phone ***-***-4567."),
    ("SSN 123456789: on file", "SSN ***-**-****: on file"),
    (
        "contact=b@xn--80ak6aa92e.xn--p1ai",
        "contact=b***@xn--80ak6aa92e.xn--p1ai",
    ),
    ("write to a@b.example.", "write to a***@b.example."),
    ("ref 5018 0000 0009 1234.", "ref 5018 0000 0009 1234."),
];

/// The `mask` example as a user runs it: each line in, its masked line out.
#[test]
fn mask_example_masks_items_before_punctuation() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory")
        .join("examples")
        .join("mask");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --all-features --example mask` (scripts/test does)",
        binary.display()
    );
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FAULTLINE_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mask example starts");
    let input: String = SENTENCES
        .iter()
        .map(|(text, _)| format!("{text}\n"))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let got: Vec<&str> = stdout.lines().collect();
    let want: Vec<&str> = SENTENCES.iter().map(|(_, masked)| *masked).collect();
    assert_eq!(got, want);
}

/// The same sentences through the engine: span attributes, a captured
/// header, an exception event and the status, as the exporter receives
/// them, and the problem body of the error, as the client does.
#[test]
fn exported_span_masks_items_before_punctuation() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let mut attributes: Vec<KeyValue> = SENTENCES
        .iter()
        .enumerate()
        .map(|(i, (text, _))| KeyValue::new(format!("app.note.{i}"), *text))
        .collect();
    // A captured request header, in the form the request module records it.
    attributes.push(KeyValue::new(
        "http.request.header.x-note",
        Value::Array(vec![StringValue::from(SENTENCES[0].0)].into()),
    ));
    let cx = engine.start_server_span("POST /notes", attributes, &http::HeaderMap::new());
    let err = AppError::new(DECLINED, SENTENCES[1].0);
    engine.record_failure(&cx, &Failure::error(&err));
    cx.span().end();

    let problem = ProblemDetails::from_app_error(&err).masked(engine.masker());
    assert_eq!(problem.detail, SENTENCES[1].1);

    engine.force_flush();
    let exported = spans.wait_for(1, WAIT);
    let span = &exported[0];
    for (i, (_, masked)) in SENTENCES.iter().enumerate() {
        assert_eq!(attribute(span, &format!("app.note.{i}")), *masked);
    }
    let header = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.request.header.x-note")
        .map(|kv| kv.value.clone());
    assert_eq!(
        header,
        Some(Value::Array(vec![StringValue::from(SENTENCES[0].1)].into()))
    );
    let exception = span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("an exception event");
    assert_eq!(
        exception
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "exception.message")
            .map(|kv| kv.value.to_string())
            .as_deref(),
        Some(SENTENCES[1].1)
    );
    let bytes = format!("{exported:?}");
    for raw in [
        "4111111111111111",
        "378282246310005",
        "5555555555554444",
        "555-123-4567",
        "4915112345678",
        "5551234567",
        "123456789",
        "b@xn--",
        "a@b.example",
    ] {
        assert!(
            !bytes.contains(raw),
            "{raw:?} reached the exporter:\n{bytes}"
        );
    }
    engine.shutdown();
}
