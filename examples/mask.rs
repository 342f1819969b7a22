//! Try a masking configuration before deploying it: every line read on
//! standard input is written on standard output as faultline's default PII
//! masker would export it, one line out for each line in.
//!
//! ```text
//! echo 'refund for jane.doe@example.com, card 4111 1111 1111 1111' | cargo run --example mask
//! cargo run --example mask < app.log > masked.log
//! cargo run --example mask -- --pattern 'order=ORD-[0-9]{8}' --pattern 'iban=\bDE\d{20}\b' < app.log
//! FAULTLINE_PII_PATTERNS='{"badge": {"regex": "BADGE-[A-Z]{4}", "replacement": "BADGE-****"}}' \
//!     FAULTLINE_SECRET_KEYS=pin cargo run --example mask < app.log
//! ```
//!
//! The configuration comes from the environment like every example's
//! (`FAULTLINE_PII_PATTERNS`, `FAULTLINE_SECRET_KEYS`,
//! `FAULTLINE_REDACT_HEADERS`, `FAULTLINE_PII_HASH_KEY`,
//! `FAULTLINE_PII_MASKING`, ...); each `--pattern NAME=REGEX` adds a custom
//! pattern replaced by `[REDACTED]`. A bad pattern or setting prints one line
//! naming it on standard error and exits with status 2.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, BufWriter, Write};

use faultline::config::TracingConfig;
use faultline::masking::{Masker, PiiMasker};

const USAGE: &str = "usage: cargo run --example mask [-- --pattern NAME=REGEX ...] < input";

/// One line on standard error, exit status 2.
fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("mask: {message}");
    std::process::exit(2);
}

fn main() {
    let mut patterns: Vec<(String, String)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let spec = match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            "--pattern" => args
                .next()
                .unwrap_or_else(|| fail("--pattern needs a value: NAME=REGEX")),
            _ => match arg.strip_prefix("--pattern=") {
                Some(spec) => spec.to_owned(),
                None => fail(format!("unknown argument {arg:?} ({USAGE})")),
            },
        };
        match spec.split_once('=') {
            Some((name, regex)) => patterns.push((name.to_owned(), regex.to_owned())),
            None => fail(format!("--pattern {spec:?}: expected NAME=REGEX")),
        }
    }

    let config = TracingConfig::builder()
        .service_name("faultline-mask")
        .exporters([])
        .with_env()
        .and_then(|builder| {
            patterns
                .iter()
                .fold(builder, |b, (name, regex)| b.pii_pattern(name, regex))
                .build()
        })
        .unwrap_or_else(|e| fail(e));
    let masker = PiiMasker::from_config(&config);
    let masking = config.pii_masking();
    if !masking {
        eprintln!(
            "mask: PII masking is off (FAULTLINE_PII_MASKING): lines pass unchanged, as the engine would export them"
        );
    }

    let mut input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let mut out = BufWriter::new(io::stdout().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => fail(format!("cannot read standard input: {e}")),
        }
        let ending = if line.ends_with(b"\r\n") {
            "\r\n"
        } else if line.ends_with(b"\n") {
            "\n"
        } else {
            ""
        };
        let text = String::from_utf8_lossy(&line[..line.len() - ending.len()]);
        let masked = if masking {
            masker.mask(&text)
        } else {
            Cow::Borrowed(&*text)
        };
        let written = out
            .write_all(masked.as_bytes())
            .and_then(|()| out.write_all(ending.as_bytes()))
            // Interactive use: show each line as soon as no more input waits.
            .and_then(|()| {
                if input.buffer().is_empty() {
                    out.flush()
                } else {
                    Ok(())
                }
            });
        match written {
            Ok(()) => {}
            // `mask < big.log | head`: the reader left, nothing more to do.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return,
            Err(e) => fail(format!("cannot write standard output: {e}")),
        }
    }
    if let Err(e) = out.flush()
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        fail(format!("cannot write standard output: {e}"));
    }
}
