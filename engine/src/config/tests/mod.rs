//! Unit tests of the configuration: every validation rule, the environment
//! (through `with_env_from`, never the real process environment), files and
//! serde, defaults, `Debug` and the `to_builder` round trip.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

mod debug;
mod defaults;
mod env;
mod exporters;
mod file;
mod validation;
mod values;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A file or directory under the system temp directory, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn unique(tag: &str, ext: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "faultline-config-test-{}-{n}-{tag}{ext}",
            std::process::id()
        ))
    }

    fn file(tag: &str, ext: &str, contents: &str) -> TempPath {
        let path = Self::unique(tag, ext);
        std::fs::write(&path, contents).expect("write temp file");
        TempPath(path)
    }

    fn dir(tag: &str) -> TempPath {
        let path = Self::unique(tag, "");
        std::fs::create_dir(&path).expect("create temp dir");
        TempPath(path)
    }

    /// A path that does not exist (nothing is created).
    fn missing(tag: &str) -> TempPath {
        TempPath(Self::unique(tag, ".pem"))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn env_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Applies the given variables over the defaults (without building).
fn with_env(pairs: &[(&str, &str)]) -> Result<TracingConfigBuilder, ConfigError> {
    let map = env_map(pairs);
    TracingConfig::builder().with_env_from(|name| map.get(name).cloned())
}

/// Applies the given variables over the defaults and builds.
fn from_env(pairs: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
    with_env(pairs)?.build()
}

fn env_ok(pairs: &[(&str, &str)]) -> TracingConfig {
    from_env(pairs).unwrap_or_else(|e| panic!("{pairs:?} should be accepted, got: {e}"))
}

fn env_err(pairs: &[(&str, &str)]) -> ConfigError {
    match from_env(pairs) {
        Ok(c) => panic!("{pairs:?} should be rejected, got: {c:?}"),
        Err(e) => {
            assert_one_line(&e);
            e
        }
    }
}

fn build_ok(b: TracingConfigBuilder) -> TracingConfig {
    b.build()
        .unwrap_or_else(|e| panic!("should be accepted, got: {e}"))
}

fn build_err(b: TracingConfigBuilder) -> ConfigError {
    match b.build() {
        Ok(c) => panic!("should be rejected, got: {c:?}"),
        Err(e) => {
            assert_one_line(&e);
            e
        }
    }
}

fn builder() -> TracingConfigBuilder {
    TracingConfig::builder()
}

fn assert_one_line(e: &ConfigError) {
    let text = e.to_string();
    assert!(
        !text.contains('\n') && !text.contains('\r'),
        "error message spans several lines: {text:?}"
    );
    assert!(!text.is_empty());
}

/// Asserts an `Invalid` error about `setting` whose message starts with the setting.
fn assert_names(e: &ConfigError, setting: &str) {
    assert_eq!(e.setting(), Some(setting), "wrong setting in: {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{setting}: invalid value ")),
        "message: {e}"
    );
    assert_one_line(e);
}

fn header_strs(names: &[HeaderName]) -> Vec<&str> {
    names.iter().map(HeaderName::as_str).collect()
}

const HIDDEN: &str = "(hidden: it may hold a secret)";

type HeaderSetter = fn(TracingConfigBuilder, &str) -> TracingConfigBuilder;
type HeaderGetter = fn(&TracingConfig) -> &[HeaderName];
