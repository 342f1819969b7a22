//! Fuzzes problem details: arbitrary detail, instance, trace id, extension
//! members and codes through `ProblemDetails` -> `masked` -> `to_json`.
//! Never panics; the body is always valid JSON that parses back to the
//! same problem details; masked text is stable and secret extension keys
//! are redacted.
#![no_main]

use std::sync::OnceLock;

use faultline_engine::error::{ErrorCode, ProblemDetails};
use faultline_engine::masking::{Masker, PiiMasker, REDACTED};
use http::StatusCode;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Extension {
    Text(String),
    Number(i64),
    Flag(bool),
    List(Vec<String>),
    Nothing,
}

impl Extension {
    fn json(self) -> serde_json::Value {
        match self {
            Extension::Text(s) => s.into(),
            Extension::Number(n) => n.into(),
            Extension::Flag(b) => b.into(),
            Extension::List(l) => l.into(),
            Extension::Nothing => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    code: u32,
    status: u16,
    detail: String,
    instance: Option<String>,
    trace_id: Option<String>,
    extensions: Vec<(String, Extension)>,
}

fn masker() -> &'static PiiMasker {
    static M: OnceLock<PiiMasker> = OnceLock::new();
    M.get_or_init(PiiMasker::default)
}

fuzz_target!(|input: Input| {
    let status = StatusCode::from_u16(100 + input.status % 900).expect("100..=999 is a status");
    let code = ErrorCode::new(input.code, "FUZZ", status);
    let mut problem = ProblemDetails::new(code, input.detail);
    if let Some(instance) = input.instance {
        problem = problem.with_instance(instance);
    }
    if let Some(trace_id) = input.trace_id {
        problem = problem.with_trace_id(trace_id);
    }
    for (key, value) in input.extensions.into_iter().take(16) {
        problem = problem.with_extension(key, value.json());
    }
    let masker = masker();
    let masked = problem.clone().masked(masker);

    assert_eq!(masked.code, input.code);
    assert_eq!(masked.status, status.as_u16());
    assert_eq!(masker.mask(&masked.detail), masked.detail.as_str());
    if let Some(instance) = &masked.instance {
        assert_eq!(masker.mask(instance), instance.as_str());
    }
    for (key, value) in &masked.extensions {
        if masker.is_secret_key(key) {
            assert_eq!(value, REDACTED);
        } else if let serde_json::Value::String(s) = value {
            assert_eq!(masker.mask(s), s.as_str());
        }
    }

    let body = masked.to_json();
    let parsed: serde_json::Value = serde_json::from_str(&body).expect("the body is JSON");
    assert!(parsed.is_object());
    assert_eq!(parsed["code"], input.code);
    assert_eq!(parsed["status"], status.as_u16());
    let back: ProblemDetails = serde_json::from_str(&body).expect("the body reads back");
    assert_eq!(back, masked, "{body}");
});
