//! Fuzzes the environment reader: arbitrary values for the variables
//! `with_env_from` reads (and arbitrary extra names), through `build()`.
//! Never panics; an error is one line; an error about the OTLP headers or
//! the hash key never repeats a header value or the key.
#![no_main]

use std::collections::HashMap;

use faultline_engine::config::{ENV_VARIABLES, TracingConfig};
use libfuzzer_sys::fuzz_target;

/// Variables whose values are secret as a whole, or hold secrets in parts.
const SECRET_VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "FAULTLINE_PII_HASH_KEY",
];

fuzz_target!(|pairs: Vec<(u8, String, String)>| {
    // Each pair sets a known variable (picked by the byte) and, under the
    // arbitrary name, a variable nothing reads (it must be ignored).
    let mut env: HashMap<String, String> = HashMap::new();
    for (pick, name, value) in pairs.iter().take(64) {
        let known = ENV_VARIABLES[usize::from(*pick) % ENV_VARIABLES.len()];
        env.insert(known.to_owned(), value.clone());
        env.entry(name.clone()).or_insert_with(|| value.clone());
    }
    let result = TracingConfig::builder()
        .with_env_from(|name| env.get(name).cloned())
        .and_then(|b| b.build());
    let Err(error) = result else { return };
    let message = error.to_string();
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "{message:?}"
    );

    // Secret parts: header values (after `=` in each comma item) and the key.
    let mut secrets: Vec<&str> = Vec::new();
    for var in SECRET_VARS {
        let Some(value) = env.get(*var) else { continue };
        if *var == "FAULTLINE_PII_HASH_KEY" {
            secrets.push(value.trim());
        } else {
            secrets.extend(
                value
                    .split(',')
                    .filter_map(|i| i.split_once('='))
                    .map(|(_, v)| v.trim()),
            );
        }
    }
    for secret in secrets {
        // Only distinctive values: long, plain, and not also written
        // somewhere that may be shown (another variable, a header name).
        if secret.len() < 12 || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let elsewhere = env.iter().any(|(name, value)| {
            name.contains(secret)
                || (!SECRET_VARS.contains(&name.as_str()) && value.contains(secret))
                || (SECRET_VARS.contains(&name.as_str())
                    && value
                        .split(',')
                        .any(|i| i.split_once('=').map_or(i, |(k, _)| k).contains(secret)))
        });
        if !elsewhere {
            assert!(!message.contains(secret), "{message}");
        }
    }
});
