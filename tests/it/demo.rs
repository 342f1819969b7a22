//! The demo (`examples/demo`) as a new user runs it: a real process that
//! must finish by itself, print every scripted request's trace as one tree
//! across both services, the problem+json bodies with trace ids that lead
//! to those trees, and none of the personal data the script sends.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest a run may take before the test calls it a hang (the demo
/// itself finishes in well under a second on an idle machine).
const HANG_DEADLINE: Duration = Duration::from_secs(90);

/// What the script sends and must never be printed as it is.
const RAW_PII: &[&str] = &[
    "jane.doe@example.com",
    "alice@example.com",
    "4111 1111 1111 1111",
    "4111111111111111",
    "+1 (555) 123-4567",
    "(555) 123-4567",
    "555-123-4567",
    "demo-secret-token",
];

/// The compiled demo, beside the test binary (`cargo test --all-targets`
/// builds the examples).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let debug_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory");
    let path = debug_dir.join("examples").join("demo");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --all-features --example demo` (cargo test --all-targets does)",
        path.display()
    );
    path
}

struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the demo with none of the caller's tracing variables, plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("OTEL_")
            || name.starts_with("FAULTLINE_")
            || name.starts_with("SENTRY_")
            || name == "RUST_LOG"
            || name == "NO_COLOR"
        {
            command.env_remove(&name);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + HANG_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not finish within {HANG_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// One span line of a waterfall.
#[derive(Debug, Clone)]
struct SpanLine {
    service: String,
    depth: usize,
    name: String,
    kind: String,
}

/// One request's part of the "Traces" section.
#[derive(Debug, Default)]
struct TraceBlock {
    trace_id: String,
    spans: Vec<SpanLine>,
    text: String,
}

const KINDS: [&str; 5] = ["server", "client", "internal", "producer", "consumer"];

/// Reads a span line: `  SERVICE  TREE+NAME  KIND  BAR  DURATION  STATUS ...`;
/// the depth comes from where the name starts (3 columns per level).
fn span_line(line: &str) -> Option<(SpanLine, usize)> {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() < 3 || chars[0] != ' ' || chars[1] != ' ' || chars[2] == ' ' {
        return None;
    }
    let service_end = (2..chars.len()).find(|&i| chars[i] == ' ')?;
    let service: String = chars[2..service_end].iter().collect();
    let name_col =
        (service_end..chars.len()).find(|&i| !matches!(chars[i], ' ' | '│' | '├' | '└' | '─'))?;
    let rest: String = chars[name_col..].iter().collect();
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    let kind_at = tokens.iter().position(|t| KINDS.contains(t))?;
    Some((
        SpanLine {
            service,
            depth: 0,
            name: tokens[..kind_at].join(" "),
            kind: tokens[kind_at].to_owned(),
        },
        name_col,
    ))
}

/// The "Traces" section, request by request (`[N]` → block).
fn traces(stdout: &str) -> HashMap<usize, TraceBlock> {
    let section = stdout
        .split("\nTraces")
        .nth(1)
        .and_then(|s| s.split("\nProblem details").next())
        .expect("a Traces section");
    let mut blocks: HashMap<usize, TraceBlock> = HashMap::new();
    let mut current: Option<usize> = None;
    let mut root_col = 0;
    for line in section.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[')
            && let Some((n, _)) = rest.split_once(']')
            && let Ok(n) = n.parse::<usize>()
        {
            current = Some(n);
            blocks.entry(n).or_default();
            continue;
        }
        let Some(n) = current else { continue };
        let block = blocks.get_mut(&n).unwrap();
        block.text.push_str(line);
        block.text.push('\n');
        if let Some(id) = trimmed.strip_prefix("trace ") {
            block.trace_id = id.split_whitespace().next().unwrap_or("").to_owned();
            continue;
        }
        if let Some((mut span, col)) = span_line(line) {
            if block.spans.is_empty() {
                root_col = col;
            }
            assert_eq!(
                (col - root_col) % 3,
                0,
                "indentation is 3 columns per level: {line}"
            );
            span.depth = (col - root_col) / 3;
            block.spans.push(span);
        }
    }
    blocks
}

/// The "Problem details" section: (`[N]`, the body).
fn problems(stdout: &str) -> Vec<(usize, Value)> {
    let section = stdout
        .split("\nProblem details")
        .nth(1)
        .expect("a Problem details section");
    let mut out = Vec::new();
    let mut current = None;
    for line in section.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix('[')
            && let Some((n, _)) = rest.split_once(']')
        {
            current = n.parse::<usize>().ok();
        } else if trimmed.starts_with('{') {
            let body: Value = serde_json::from_str(trimmed).expect("a problem+json body");
            out.push((current.expect("a body under its request"), body));
        }
    }
    out
}

fn check_demo(backend: &str) {
    let run = run(&["--backend", backend], &[]);
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        run.status.success(),
        "demo --backend {backend} failed ({:?}):\n{all}",
        run.status
    );
    assert!(
        run.stderr.trim().is_empty(),
        "nothing on standard error (the panic's payload included): {}",
        run.stderr
    );
    assert!(
        !all.contains('\x1b'),
        "no colors when stdout is not a terminal"
    );
    assert!(
        run.stdout.contains(&format!(" {backend} ")),
        "names the backend's framework"
    );

    // Every scripted request's trace: one tree, the gateway's server span at
    // the root, the backend's server span under a gateway CLIENT span.
    let blocks = traces(&run.stdout);
    assert_eq!(blocks.len(), 4, "four scripted requests:\n{}", run.stdout);
    for n in 1..=4 {
        let block = &blocks[&n];
        assert_eq!(
            block.trace_id.len(),
            32,
            "[{n}] a trace id:\n{}",
            block.text
        );
        assert!(block.trace_id.chars().all(|c| c.is_ascii_hexdigit()));
        let spans = &block.spans;
        let root = &spans[0];
        assert_eq!(
            (root.service.as_str(), root.kind.as_str(), root.depth),
            ("gateway", "server", 0),
            "[{n}] the gateway's server span is the root:\n{}",
            block.text
        );
        assert_eq!(
            spans.iter().filter(|s| s.depth == 0).count(),
            1,
            "[{n}] one tree:\n{}",
            block.text
        );
        let mut crossings = 0;
        for pair in spans.windows(2) {
            let (parent, child) = (&pair[0], &pair[1]);
            if child.service == "backend" && child.kind == "server" {
                assert_eq!(
                    (parent.service.as_str(), parent.kind.as_str()),
                    ("gateway", "client"),
                    "[{n}] the backend's server span hangs under a gateway CLIENT span:\n{}",
                    block.text
                );
                assert_eq!(child.depth, parent.depth + 1, "[{n}]:\n{}", block.text);
                crossings += 1;
            }
        }
        assert!(
            crossings >= 1,
            "[{n}] both services in one trace:\n{}",
            block.text
        );
        for span in spans.iter().filter(|s| s.service == "backend") {
            assert!(span.depth >= 2, "[{n}] backend spans below the gateway's");
        }
    }
    // The success calls the backend twice; the route templates name the spans.
    let names: Vec<&str> = blocks[&1].spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        blocks[&1]
            .spans
            .iter()
            .filter(|s| s.kind == "client")
            .count(),
        2,
        "{names:?}"
    );
    assert!(names.contains(&"GET /orders/{id}"), "{names:?}");
    assert!(names.contains(&"GET /stock/{sku}"), "{names:?}");
    assert!(names.contains(&"GET /prices/{sku}"), "{names:?}");
    assert!(names.contains(&"SELECT stock"), "{names:?}");
    // The panic is an exception event on the backend's span, masked.
    assert!(
        blocks[&3]
            .text
            .contains("exception panic: stock worker crashed for a***@example.com"),
        "{}",
        blocks[&3].text
    );
    // The personal data went onto the spans raw and came out masked.
    let checkout = &blocks[&4].text;
    for masked in [
        "app.customer.email=j***@example.com",
        "app.customer.phone=***-***-4567",
        "app.payment.card=****-****-****-1111",
        "http.request.header.authorization=[REDACTED]",
    ] {
        assert!(checkout.contains(masked), "{masked} in:\n{checkout}");
    }

    // The problem+json bodies: codes, and trace ids that lead to the trees above.
    let bodies = problems(&run.stdout);
    let seen: BTreeSet<(usize, u64, u64)> = bodies
        .iter()
        .map(|(n, b)| {
            (
                *n,
                b["status"].as_u64().unwrap(),
                b["code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from([(2, 404, 3001), (3, 502, 6001), (4, 402, 2001)]),
        "{}",
        run.stdout
    );
    for (n, body) in &bodies {
        let trace_id = body["trace_id"].as_str().expect("a trace_id");
        assert_eq!(
            trace_id, blocks[n].trace_id,
            "[{n}] the body's trace id is the trace printed for it"
        );
        for member in ["type", "title", "detail", "instance"] {
            assert!(body[member].is_string(), "[{n}] {member}: {body}");
        }
    }
    let panic_body = &bodies.iter().find(|(n, _)| *n == 3).unwrap().1;
    assert!(
        !panic_body.to_string().contains("crashed"),
        "nothing of the panic text reaches the client: {panic_body}"
    );

    // No raw personal data anywhere.
    for raw in RAW_PII {
        assert!(!all.contains(raw), "raw {raw:?} printed:\n{all}");
    }
}

#[test]
fn demo_traces_each_request_across_gateway_and_poem_backend() {
    check_demo("poem");
}

#[test]
fn demo_traces_each_request_across_gateway_and_warp_backend() {
    check_demo("warp");
}

#[test]
fn demo_stops_at_a_bad_variable_with_one_line_naming_it() {
    let run = run(
        &[],
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", run.stderr);
    assert!(lines[0].contains("OTEL_TRACES_SAMPLER_ARG"), "{}", lines[0]);
    assert!(
        run.stdout.is_empty(),
        "nothing else printed: {}",
        run.stdout
    );

    let run = run_bad_argument();
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("--backend"), "{}", run.stderr);
}

fn run_bad_argument() -> Run {
    run(&["--backend", "rocket"], &[])
}

#[test]
fn demo_exports_over_otlp_too_when_an_endpoint_is_set() {
    let receiver = crate::otlp::Receiver::start(&[]);
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc_port);
    let run = run(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    assert!(run.status.success(), "{}{}", run.stdout, run.stderr);
    let blocks = traces(&run.stdout);
    assert_eq!(
        blocks.len(),
        4,
        "the waterfall still prints:\n{}",
        run.stdout
    );
    let printed: usize = blocks.values().map(|b| b.spans.len()).sum();
    let spans = receiver.spans(printed);
    assert_eq!(
        spans.len(),
        printed,
        "every printed span reached the collector"
    );
    for block in blocks.values() {
        assert!(
            spans
                .iter()
                .any(|s| s["trace_id"] == block.trace_id.as_str()),
            "trace {} exported",
            block.trace_id
        );
    }
    let exported = serde_json::to_string(&spans).unwrap();
    for raw in RAW_PII {
        assert!(!exported.contains(raw), "raw {raw:?} exported");
    }
    assert!(exported.contains("j***@example.com"));
}
