//! Fuzzes the configuration-file path: arbitrary bytes as TOML and as JSON,
//! through `TracingConfigBuilder::from_file` (then `build()`) and through
//! `TracingConfig`'s `Deserialize`. Never panics; every error is one line.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use faultline_engine::config::{TracingConfig, TracingConfigBuilder};
use libfuzzer_sys::fuzz_target;

/// Two scratch files for this process, one per extension.
fn scratch(ext: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("faultline-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    });
    dir.join(format!("config.{ext}"))
}

fn one_line(message: &str) {
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "{message:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    for ext in ["toml", "json"] {
        let path = scratch(ext);
        std::fs::write(&path, data).expect("write the scratch file");
        match TracingConfigBuilder::from_file(&path).and_then(|b| b.build()) {
            Ok(config) => {
                // What a file accepted, the same text accepts through serde.
                let text = std::str::from_utf8(data).expect("a file that parsed is UTF-8");
                let again: TracingConfig = if ext == "toml" {
                    toml::from_str(text).expect("serde agrees with from_file")
                } else {
                    serde_json::from_str(text).expect("serde agrees with from_file")
                };
                assert_eq!(again, config);
            }
            Err(e) => one_line(&e.to_string()),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = toml::from_str::<TracingConfig>(text);
        let _ = serde_json::from_str::<TracingConfig>(text);
    }
});
