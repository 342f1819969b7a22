//! The exporter end to end on loopback: what it sends, and how each failure
//! is classified.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, UNIX_EPOCH};

use faultline_engine::config::{ConfigError, TracingConfig};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

use super::*;

fn span(i: u64) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(i) + 1),
            SpanId::from(i + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: "work".into(),
        start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        end_time: UNIX_EPOCH + Duration::from_secs(1_700_000_001),
        attributes: vec![KeyValue::new("n", i as i64)],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("t").build(),
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("unit")
        .with_attribute(KeyValue::new("host.name", "h1"))
        .build()
}

fn agent_exporter(port: u16) -> JaegerExporter {
    let mut exporter = JaegerExporter::builder()
        .agent("127.0.0.1", port)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    exporter.set_resource(&resource());
    exporter
}

#[tokio::test]
async fn udp_export_sends_one_datagram_and_counts() {
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let exporter = agent_exporter(agent.local_addr().unwrap().port());
    let batch: Vec<SpanData> = (0..10).map(span).collect();
    exporter.export(&batch).await.unwrap();
    let mut buf = vec![0; 70_000];
    let n = agent.recv(&mut buf).unwrap();
    // The compact protocol's message header: protocol id, then oneway (4) << 5 | version 1.
    assert_eq!(&buf[..2], &[0x82, 0x81]);
    assert!(buf[..n].windows(4).any(|w| w == b"unit"), "service name");
    let stats = exporter.stats();
    assert_eq!((stats.packets_sent, stats.spans_sent), (1, 10));
    assert_eq!(stats.export_errors, 0);
    exporter.export(&[]).await.unwrap();
    assert_eq!(
        exporter.stats().packets_sent,
        1,
        "nothing sent for no spans"
    );
}

#[tokio::test]
async fn an_agent_that_is_gone_is_a_transient_error() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let exporter = agent_exporter(port);
    // The first send succeeds locally; the ICMP "port unreachable" it
    // causes makes a later send on the connected socket fail.
    let mut error = None;
    for i in 0..20 {
        if let Err(e) = exporter.export(&[span(i)]).await {
            error = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match error {
        Some(ExportError::Transient {
            reason: message, ..
        }) => {
            assert!(message.contains("127.0.0.1"), "{message}")
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert!(exporter.stats().export_errors >= 1);
}

/// A collector on loopback answering every request with `status`
/// (or never answering when `status` is empty).
fn collector(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/api/traces",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if status.is_empty() {
                held.push(stream);
                continue;
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
            );
        }
    });
    url
}

fn collector_exporter(url: &str, timeout: Duration) -> JaegerExporter {
    let mut exporter = JaegerExporter::builder()
        .collector(url)
        .unwrap()
        .timeout(timeout)
        .build()
        .unwrap();
    exporter.set_resource(&resource());
    exporter
}

#[tokio::test]
async fn collector_answers_are_classified() {
    for (status, expected) in [
        ("200 OK", "ok"),
        ("202 Accepted", "ok"),
        ("400 Bad Request", "permanent"),
        ("413 Payload Too Large", "permanent"),
        ("408 Request Timeout", "transient"),
        ("429 Too Many Requests", "transient"),
        ("500 Internal Server Error", "transient"),
        ("503 Service Unavailable", "transient"),
    ] {
        let exporter = collector_exporter(&collector(status), Duration::from_secs(5));
        let got = match exporter.export(&[span(1)]).await {
            Ok(()) => "ok",
            Err(ExportError::Permanent { reason: m, .. }) => {
                assert!(m.contains(status.split(' ').next().unwrap()), "{m}");
                "permanent"
            }
            Err(ExportError::Transient { .. }) => "transient",
            Err(e) => panic!("{status}: {e:?}"),
        };
        assert_eq!(got, expected, "{status}");
        if expected == "ok" {
            assert_eq!(exporter.stats().batches_posted, 1);
            assert_eq!(exporter.stats().spans_sent, 1);
        }
    }
}

#[tokio::test]
async fn collector_down_is_transient_and_slow_collector_times_out() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://user:secret@127.0.0.1:{port}/api/traces");
    let exporter = collector_exporter(&url, Duration::from_secs(5));
    match exporter.export(&[span(1)]).await {
        Err(ExportError::Transient { reason: m, .. }) => assert!(!m.contains("secret"), "{m}"),
        other => panic!("expected transient, got {other:?}"),
    }

    let timeout = Duration::from_millis(300);
    let exporter = collector_exporter(&collector(""), timeout);
    let started = std::time::Instant::now();
    let result = exporter.export(&[span(1)]).await;
    assert!(
        matches!(result, Err(ExportError::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "only catches a hang"
    );
}

#[tokio::test]
async fn after_shutdown_exports_are_refused() {
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let exporter = agent_exporter(agent.local_addr().unwrap().port());
    exporter.force_flush().await.unwrap();
    exporter.shutdown().await.unwrap();
    let result = exporter.export(&[span(1)]).await;
    assert!(matches!(result, Err(ExportError::ShutDown)), "{result:?}");
}

#[test]
fn configuration_chooses_the_target() {
    let engine = TracingConfig::builder()
        .service_name("svc")
        .export_timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let agent = JaegerConfig::new().agent("10.0.0.9", 6832);
    let exporter = JaegerExporter::new(&agent, &engine).unwrap();
    let debug = format!("{exporter:?}");
    assert!(debug.contains("agent udp://10.0.0.9:6832"), "{debug}");
    assert!(debug.contains("1.5s"), "{debug}");
    assert_eq!(exporter.process.service_name, "svc");

    let collector = JaegerConfig::new().endpoint("https://jaeger.example:14268/api/traces?token=t");
    let debug = format!("{:?}", JaegerExporter::new(&collector, &engine).unwrap());
    assert!(
        debug.contains("collector https://jaeger.example:14268"),
        "{debug}"
    );
    assert!(!debug.contains("token"), "{debug}");
}

#[test]
fn bad_settings_are_refused() {
    assert!(matches!(
        JaegerExporter::builder().max_packet_size(100).build().err(),
        Some(JaegerError::InvalidPacketSize(100))
    ));
    assert!(matches!(
        JaegerExporter::builder()
            .max_packet_size(70_000)
            .build()
            .err(),
        Some(JaegerError::InvalidPacketSize(70_000))
    ));
    assert!(matches!(
        JaegerExporter::builder().collector("ftp://x/api/traces"),
        Err(JaegerError::InvalidEndpoint(_))
    ));
    let message = JaegerError::InvalidPacketSize(1).to_string();
    assert!(message.contains("1024..=65507"));
}

#[tokio::test]
async fn a_smaller_packet_limit_is_kept() {
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut exporter = JaegerExporter::builder()
        .agent("127.0.0.1", agent.local_addr().unwrap().port())
        .max_packet_size(1_500)
        .build()
        .unwrap();
    exporter.set_resource(&resource());
    let batch: Vec<SpanData> = (0..100).map(span).collect();
    exporter.export(&batch).await.unwrap();
    let packets = exporter.stats().packets_sent;
    assert!(packets > 1, "{packets}");
    let mut buf = vec![0; 70_000];
    for _ in 0..packets {
        let n = agent.recv(&mut buf).unwrap();
        assert!(n <= 1_500, "{n}");
    }
    assert_eq!(exporter.stats().spans_sent, 100);
}

// ---------------------------------------------------------------------------
// Settings (`JaegerConfig`): the rules and the environment
// ---------------------------------------------------------------------------

fn agent_ok(config: JaegerConfig) -> JaegerConfig {
    config
        .validate()
        .unwrap_or_else(|e| panic!("should be accepted, got: {e}"));
    config
}

fn agent_err(config: JaegerConfig) -> ConfigError {
    config.validate().expect_err("should be rejected")
}

fn env(pairs: &[(&str, &str)]) -> Result<JaegerConfig, ConfigError> {
    JaegerConfig::new().with_env_from(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

fn env_ok(pairs: &[(&str, &str)]) -> JaegerConfig {
    env(pairs).unwrap_or_else(|e| panic!("{pairs:?} should be accepted, got: {e}"))
}

fn env_err(pairs: &[(&str, &str)]) -> ConfigError {
    env(pairs).expect_err("should be rejected")
}

#[test]
fn config_agent_host_valid() {
    let label63 = "a".repeat(63);
    let hosts = [
        "localhost",
        "jaeger-agent",
        "jaeger.observability.svc.cluster.local",
        "example.com.",
        "a1.b2",
        "10.0.0.1",
        "255.255.255.255",
        "[::1]",
        "::1",
        "[2001:db8::1]",
        "[fe80::1:2:3:4]",
        label63.as_str(),
    ];
    for host in hosts {
        let c = agent_ok(JaegerConfig::new().agent(host, 6832));
        assert_eq!(c.agent_host(), host);
        assert_eq!(c.agent_port(), 6832);
    }
}

#[test]
fn config_agent_host_invalid() {
    let label64 = "a".repeat(64);
    let too_long = ["abcdefghij"; 24].join("."); // 263 bytes
    let hosts = [
        "-jaeger",
        "jaeger-",
        "jae ger",
        "jaeger_agent",
        "a..b",
        ".",
        ".jaeger",
        label64.as_str(),
        "[localhost]",
        "[::1",
        "jaeger:6831",
        "jäger",
        "[2001:db8::zz]",
    ];
    for host in hosts {
        let e = agent_err(JaegerConfig::new().agent(host, 6831));
        assert_eq!(
            e.to_string(),
            format!("jaeger_agent_host: invalid value {host:?}: not a host name or IP address"),
        );
    }
    let e = agent_err(JaegerConfig::new().agent(too_long.as_str(), 6831));
    assert!(
        e.to_string()
            .ends_with("... (263 bytes): not a host name or IP address"),
        "{e}"
    );
    assert_eq!(
        agent_err(JaegerConfig::new().agent("", 6831)).to_string(),
        r#"jaeger_agent_host: invalid value "": must not be empty"#
    );
}

#[test]
fn config_agent_port() {
    assert_eq!(
        agent_ok(JaegerConfig::new().agent("localhost", 1)).agent_port(),
        1
    );
    assert_eq!(
        agent_ok(JaegerConfig::new().agent("localhost", 65535)).agent_port(),
        65535
    );
    assert_eq!(
        agent_err(JaegerConfig::new().agent("localhost", 0)).to_string(),
        r#"jaeger_agent_port: invalid value "0": a port must be within 1..=65535"#
    );
    // Beyond u16 only comes from the environment (checked as it is read).
    for port in ["65536", "70000"] {
        assert_eq!(
            env_err(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", port)]).to_string(),
            format!(
                "OTEL_EXPORTER_JAEGER_AGENT_PORT: invalid value {port:?}: a port must be within 1..=65535"
            )
        );
    }
}

#[test]
fn config_from_env() {
    let c = env_ok(&[
        (
            "OTEL_EXPORTER_JAEGER_AGENT_HOST",
            "jaeger-agent.observability",
        ),
        ("OTEL_EXPORTER_JAEGER_AGENT_PORT", "6832"),
        (
            "OTEL_EXPORTER_JAEGER_ENDPOINT",
            "http://jaeger:14268/api/traces",
        ),
    ]);
    assert_eq!(c.agent_host(), "jaeger-agent.observability");
    assert_eq!(c.agent_port(), 6832);
    assert_eq!(c.endpoint_url(), Some("http://jaeger:14268/api/traces"));

    for host in ["10.1.2.3", "[::1]", " jaeger "] {
        assert_eq!(
            env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_HOST", host)]).agent_host(),
            host.trim()
        );
    }
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", " 1 ")]).agent_port(),
        1
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", "65535")]).agent_port(),
        65535
    );

    for host in ["bad_host", "-jaeger", "a..b", "[jaeger]"] {
        assert_eq!(
            env_err(&[("OTEL_EXPORTER_JAEGER_AGENT_HOST", host)]).to_string(),
            format!(
                "OTEL_EXPORTER_JAEGER_AGENT_HOST: invalid value {host:?}: not a host name or IP address"
            )
        );
    }
    for port in ["0", "65536", "-1", "abc", "6831.0", "99999999999"] {
        assert_eq!(
            env_err(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", port)]).to_string(),
            format!(
                "OTEL_EXPORTER_JAEGER_AGENT_PORT: invalid value {port:?}: a port must be within 1..=65535"
            )
        );
    }
}

#[test]
fn config_endpoint_rules() {
    for (value, reason) in [
        ("ftp://collector", "the scheme must be http or https"),
        ("collector:14268", "the scheme must be http or https"),
    ] {
        assert_eq!(
            env_err(&[("OTEL_EXPORTER_JAEGER_ENDPOINT", value)]).to_string(),
            format!("OTEL_EXPORTER_JAEGER_ENDPOINT: invalid value {value:?}: {reason}")
        );
        assert_eq!(
            agent_err(JaegerConfig::new().endpoint(value)).to_string(),
            format!("jaeger_endpoint: invalid value {value:?}: {reason}")
        );
    }
    let e = env_err(&[(
        "OTEL_EXPORTER_JAEGER_ENDPOINT",
        "https://u:s3cret@jaeger/api/traces",
    )]);
    assert!(!e.to_string().contains("s3cret"), "{e}");
    // Every variable is listed, and read.
    let asked = std::cell::RefCell::new(Vec::new());
    JaegerConfig::new()
        .with_env_from(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        })
        .unwrap();
    assert_eq!(asked.into_inner(), ENV_VARIABLES);
}
