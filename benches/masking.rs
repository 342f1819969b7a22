//! PII masking throughput: faultline's `PiiMasker` beside a naive masker
//! that runs one `regex::Regex::replace_all` per pattern (email, phone,
//! card, SSN), on the same texts, in the same run.
//!
//! `cargo bench --bench masking` (numbers in docs/BENCHMARKS.md, section
//! "PII masking"). Three inputs, each measured in bytes per second:
//!
//! * `attributes`: the string attribute values of ordinary server spans,
//!   free of personal data (method, route, path, query, user agent, host,
//!   statement, messages);
//! * `clean-corpus`: `tests/it/data/clean.txt`, 1000 log lines free of
//!   personal data but dense with its look-alikes (ids, UUIDs, hashes,
//!   timestamps, epoch millis, versions, addresses, byte counts, Luhn-invalid
//!   runs);
//! * `pii-corpus`: the texts of `tests/it/data/pii.jsonl`, 320 log lines,
//!   payloads and values each holding personal data or secrets.
//!
//! For instruction counts (callgrind, free of the machine's noise):
//!
//! ```text
//! FAULTLINE_BENCH_COUNT=N FAULTLINE_BENCH_WHICH=attributes|clean-corpus|pii-corpus <bench binary>
//! ```
//!
//! masks the chosen input N times with the `PiiMasker` and exits, without
//! criterion. Running it for two values of N under
//! `valgrind --tool=callgrind` and dividing the difference of the
//! instruction counts by the difference of N gives instructions per pass
//! over the input without the set-up costs.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use faultline::config::TracingConfig;
use faultline::masking::{Masker, PiiMasker};
use regex::Regex;

const CLEAN: &str = include_str!("../tests/it/data/clean.txt");
const PII: &str = include_str!("../tests/it/data/pii.jsonl");

/// The string attribute values of a few ordinary server spans.
const ATTRIBUTES: &[&str] = &[
    "GET",
    "/users/{id}",
    "/users/42",
    "https",
    "api.example.com",
    "1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.85 Safari/537.36",
    "POST",
    "/api/v1/orders/{order_id}/items",
    "/api/v1/orders/8812734/items",
    "page=2&per_page=50&sort=created_at",
    "checkout-7d9f8b6c5-x2x9z",
    "SELECT id, status, total FROM orders WHERE customer_id = $1 AND created_at > $2 LIMIT 50",
    "postgresql",
    "orders",
    "GET /api/v1/orders/{order_id}/items",
    "upstream connect error or disconnect/reset before headers",
    "application/json; charset=utf-8",
    "gzip, deflate, br",
    "10.12.0.7",
    "payment authorized",
    "cache miss for key product:catalog:v3",
    "inventory reserved for 3 items in warehouse eu-west-1",
    "tokio-runtime-worker",
    "faultline 0.1.0",
];

/// The naive masker: one regex pass per kind of personal data.
struct NaiveMasker {
    patterns: Vec<(Regex, &'static str)>,
}

impl NaiveMasker {
    fn new() -> Self {
        let p = |re: &str, with: &'static str| (Regex::new(re).expect("valid regex"), with);
        NaiveMasker {
            patterns: vec![
                p(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "***@***"),
                p(
                    r"(?:\+\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}\b",
                    "***-***-****",
                ),
                p(r"\b(?:\d[ -]?){12,18}\d\b", "****-****-****-****"),
                p(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b", "***-**-****"),
            ],
        }
    }

    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (regex, with) in &self.patterns {
            if let Cow::Owned(changed) = regex.replace_all(&out, *with) {
                out = Cow::Owned(changed);
            }
        }
        out
    }
}

fn pii_texts() -> Vec<String> {
    PII.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a corpus record");
            value["text"].as_str().expect("a text").to_owned()
        })
        .collect()
}

/// The three inputs, by name.
fn inputs(pii: &[String]) -> Vec<(&'static str, Vec<&str>)> {
    vec![
        ("attributes", ATTRIBUTES.to_vec()),
        ("clean-corpus", CLEAN.lines().collect()),
        ("pii-corpus", pii.iter().map(String::as_str).collect()),
    ]
}

/// Masks every text of `texts` once; the bytes of the texts that changed.
fn mask_all(masker: &PiiMasker, texts: &[&str]) -> usize {
    let mut changed = 0usize;
    for text in texts {
        if let Cow::Owned(m) = masker.mask(black_box(text)) {
            changed += m.len();
        }
    }
    changed
}

fn bench(c: &mut Criterion) {
    let ours = PiiMasker::from_config(&TracingConfig::default());
    let naive = NaiveMasker::new();
    let pii = pii_texts();
    for (name, texts) in &inputs(&pii) {
        let bytes: usize = texts.iter().map(|t| t.len()).sum();
        let mut group = c.benchmark_group(format!("masking/{name}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("pii_masker", |b| b.iter(|| mask_all(&ours, texts)));
        group.bench_function("naive_regex", |b| {
            b.iter(|| {
                let mut changed = 0usize;
                for text in texts {
                    if let Cow::Owned(m) = naive.mask(black_box(text)) {
                        changed += m.len();
                    }
                }
                changed
            })
        });
        group.finish();
    }
}

/// `FAULTLINE_BENCH_COUNT=N`: the chosen input masked `n` times, no criterion.
fn count_mode(n: u64, which: &str) {
    let masker = PiiMasker::from_config(&TracingConfig::default());
    let pii = pii_texts();
    let inputs = inputs(&pii);
    let Some((_, texts)) = inputs.iter().find(|(name, _)| *name == which) else {
        eprintln!(
            "FAULTLINE_BENCH_WHICH must be `attributes`, `clean-corpus` or `pii-corpus`, not `{which}`"
        );
        std::process::exit(2);
    };
    let mut changed = 0usize;
    for _ in 0..n {
        changed = changed.wrapping_add(mask_all(&masker, texts));
    }
    eprintln!("{which}: {n} passes, {changed} bytes of masked output");
}

fn main() {
    if let Some(count) = std::env::var_os("FAULTLINE_BENCH_COUNT") {
        let count = count.to_string_lossy();
        let n: u64 = count.trim().parse().unwrap_or_else(|_| {
            eprintln!("FAULTLINE_BENCH_COUNT must be a number, not `{count}`");
            std::process::exit(2);
        });
        let which =
            std::env::var("FAULTLINE_BENCH_WHICH").unwrap_or_else(|_| "pii-corpus".to_owned());
        count_mode(n, &which);
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40)
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
