//! Starting and finding the independent peers the tests talk to.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a Python peer script from `tests/peers/` with `input` on stdin and
/// returns its stdout as JSON. Fails the test with a clear message when
/// Python or the peer's packages are missing (`scripts/test` installs them).
pub fn run_python(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let path = root().join("tests/peers").join(script);
    let mut child = Command::new("python3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3 for {script}: {e} (run scripts/test, which installs the peers)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed (missing packages? run scripts/test, which installs them):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON: {e}"))
}
