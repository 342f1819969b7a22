//! Fuzzes the environment readers: arbitrary values for the variables the
//! engine's `TracingConfigBuilder::with_env_from` reads
//! (`config::ENV_VARIABLES`) and those the OTLP plugin's
//! `OtlpConfig::with_env_from` reads (`faultline_otlp::ENV_VARIABLES`), and
//! arbitrary extra names, through the engine's `build()` and the plugin's
//! `resolve()` for each signal. Never panics; an error is one line; an
//! error never repeats an OTLP header value or the hash key.
//!
//! The OTLP plugin's certificate and key variables are left out: their
//! values are paths the plugin opens, and an arbitrary path (a FIFO, a
//! device) is not something to hand the fuzzer.
#![no_main]

use std::collections::HashMap;

use faultline_engine::config::{ENV_VARIABLES, TracingConfig};
use faultline_otlp::{OtlpConfig, Signal};
use libfuzzer_sys::fuzz_target;

/// The variables whose values are secret as a whole (the hash key).
const SECRET_VALUES: &[&str] = &["FAULTLINE_PII_HASH_KEY"];

/// The variables whose values hold secrets in parts (header values).
const SECRET_HEADERS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
];

/// A variable whose value is a file the reader opens.
fn names_a_file(name: &str) -> bool {
    name.starts_with("OTEL_EXPORTER_OTLP_")
        && (name.ends_with("CERTIFICATE") || name.ends_with("CLIENT_KEY"))
}

fuzz_target!(|pairs: Vec<(u8, String, String)>| {
    let known: Vec<&str> = ENV_VARIABLES
        .iter()
        .chain(faultline_otlp::ENV_VARIABLES)
        .copied()
        .filter(|name| !names_a_file(name))
        .collect();
    // Each pair sets a known variable (picked by the byte) and, under the
    // arbitrary name, a variable nothing reads (it must be ignored).
    let mut env: HashMap<String, String> = HashMap::new();
    for (pick, name, value) in pairs.iter().take(64) {
        let var = known[usize::from(*pick) % known.len()];
        env.insert(var.to_owned(), value.clone());
        if !names_a_file(name) {
            env.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    let lookup = |name: &str| env.get(name).cloned();

    let mut messages = Vec::new();
    if let Err(error) = TracingConfig::builder()
        .with_env_from(lookup)
        .and_then(|b| b.build())
    {
        messages.push(error.to_string());
    }
    match OtlpConfig::new().with_env_from(lookup) {
        Err(error) => messages.push(error.to_string()),
        Ok(otlp) => {
            for signal in [Signal::Traces, Signal::Logs] {
                if let Err(error) = otlp.resolve(signal) {
                    messages.push(error.to_string());
                }
            }
        }
    }

    // Secret parts: header values (after `=` in each comma item) and the key.
    let mut secrets: Vec<&str> = Vec::new();
    for var in SECRET_VALUES {
        secrets.extend(env.get(*var).map(|v| v.trim()));
    }
    for var in SECRET_HEADERS {
        let Some(value) = env.get(*var) else { continue };
        secrets.extend(
            value
                .split(',')
                .filter_map(|i| i.split_once('='))
                .map(|(_, v)| v.trim()),
        );
    }
    let secret_var = |name: &str| SECRET_VALUES.contains(&name) || SECRET_HEADERS.contains(&name);
    for message in &messages {
        assert!(
            !message.contains('\n') && !message.contains('\r'),
            "{message:?}"
        );
        for secret in &secrets {
            // Only distinctive values: long, plain, and not also written
            // somewhere that may be shown (another variable, a header name).
            if secret.len() < 12 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
                continue;
            }
            let elsewhere = env.iter().any(|(name, value)| {
                name.contains(secret)
                    || (!secret_var(name) && value.contains(secret))
                    || (SECRET_HEADERS.contains(&name.as_str())
                        && value
                            .split(',')
                            .any(|i| i.split_once('=').map_or(i, |(k, _)| k).contains(secret)))
            });
            if !elsewhere {
                assert!(!message.contains(secret), "{message}");
            }
        }
    }
});
