//! The rules of the engine's other settings (masking, headers, retries, batch, limits, peers, keep-errors, routes) and the error type.

use super::*;

// ---------------------------------------------------------------------------
// PII patterns, secret keys, header names
// ---------------------------------------------------------------------------

#[test]
fn pii_pattern_valid() {
    let c = build_ok(
        builder()
            .pii_pattern("order_id", "ORD-[0-9]{8}")
            .pii_pattern_with("card-last4", r"\b\d{12}(\d{4})\b", "****$1")
            .pii_pattern("Ticket2", "T#[0-9]+"),
    );
    let patterns = c.pii_patterns();
    assert_eq!(patterns.len(), 3);
    let by_name: HashMap<&str, &PiiPattern> = patterns.iter().map(|p| (p.name(), p)).collect();
    let order = by_name["order_id"];
    assert_eq!(order.regex().as_str(), "ORD-[0-9]{8}");
    assert_eq!(order.replacement(), DEFAULT_PATTERN_REPLACEMENT);
    assert_eq!(order.replacement(), "[REDACTED]");
    assert!(order.regex().is_match("order ORD-12345678 shipped"));
    let card = by_name["card-last4"];
    assert_eq!(card.replacement(), "****$1");
    assert_eq!(
        card.regex()
            .replace_all("card 4111111111111111", card.replacement()),
        "card ****1111"
    );
    assert!(by_name.contains_key("Ticket2"));

    // The same name twice: the last one wins.
    let c = build_ok(
        builder()
            .pii_pattern("x", "a+")
            .pii_pattern_with("x", "b+", "B"),
    );
    assert_eq!(c.pii_patterns().len(), 1);
    assert_eq!(c.pii_patterns()[0].regex().as_str(), "b+");
    assert_eq!(c.pii_patterns()[0].replacement(), "B");
}

#[test]
fn pii_pattern_invalid() {
    let name_reason = "a pattern name must be ASCII letters, digits, `_` or `-`";
    for name in ["", "bad name", "bad.name", "naïve", "a/b"] {
        let e = build_err(builder().pii_pattern(name, "x+"));
        assert_eq!(
            e.to_string(),
            format!("pii_patterns: invalid value {name:?}: {name_reason}")
        );
    }
    assert_eq!(
        build_err(builder().pii_pattern("order", "")).to_string(),
        r#"pii_patterns.order: invalid value "": the expression is empty"#
    );
    assert_eq!(
        build_err(builder().pii_pattern("order", "(")).to_string(),
        r#"pii_patterns.order: invalid value "(": the expression does not compile (error: unclosed group)"#
    );
    for regex in ["[a-", "a{2,1}", "(?P<x>a)(?P<x>b)", "\\"] {
        let e = build_err(builder().pii_pattern("p", regex));
        assert_names(&e, "pii_patterns.p");
        assert!(
            e.to_string().contains("the expression does not compile ("),
            "{e}"
        );
    }
    for regex in ["a*", "x?", "^", "$", "(a|)", "\\B", ".*"] {
        let e = build_err(builder().pii_pattern_with("p", regex, "X"));
        assert_eq!(
            e.to_string(),
            format!(
                "pii_patterns.p: invalid value {regex:?}: the expression matches the empty string"
            )
        );
    }
    // Too large to compile within the size limit.
    let e = build_err(builder().pii_pattern("huge", "(\\w{100}){100}"));
    assert_names(&e, "pii_patterns.huge");
    // A replacement stays on one line (a masked log line stays one line).
    for replacement in ["L1\nL2", "a\rb", "tab\there", "nul\0"] {
        let e = build_err(builder().pii_pattern_with("x", "foo", replacement));
        assert_names(&e, "pii_patterns.x");
        assert!(e.to_string().contains("line break"), "{e}");
    }
    build_ok(builder().pii_pattern_with("x", "foo", "[x: $0 ✓]"));
    let e = env_err(&[(
        "FAULTLINE_PII_PATTERNS",
        r#"{"x":{"regex":"foo","replacement":"L1\nL2"}}"#,
    )]);
    assert_names(&e, "FAULTLINE_PII_PATTERNS.x");
    assert!(e.to_string().contains("line break"), "{e}");
}

#[test]
fn secret_keys_rules() {
    let c = build_ok(
        builder()
            .secret_key("API_Key")
            .secret_key("  card_cvv ")
            .secret_key("x-session.token"),
    );
    assert_eq!(c.secret_keys(), &["api_key", "card_cvv", "x-session.token"]);
    let reason = "a key must be printable ASCII without spaces";
    for (key, shown) in [
        ("", ""),
        ("   ", ""),
        ("api key", "api key"),
        ("clé", "clé"),
        ("a\tb", "a\tb"),
    ] {
        let e = build_err(builder().secret_key(key));
        assert_eq!(
            e.to_string(),
            format!("secret_keys: invalid value {shown:?}: {reason}")
        );
    }
}

const HEADER_LISTS: &[(&str, HeaderSetter, HeaderGetter)] = &[
    (
        "capture_request_headers",
        |b, h| b.capture_request_header(h),
        |c| c.capture_request_headers(),
    ),
    (
        "capture_response_headers",
        |b, h| b.capture_response_header(h),
        |c| c.capture_response_headers(),
    ),
    (
        "redact_headers",
        |b, h| b.redact_header(h),
        |c| c.redact_headers(),
    ),
];

#[test]
fn header_name_lists() {
    for (setting, add, get) in HEADER_LISTS {
        let b = [
            "X-Request-Id",
            "user-agent",
            "x-request-id",
            " Content-Type ",
        ]
        .iter()
        .fold(builder(), |b, h| add(b, h));
        let c = build_ok(b);
        assert_eq!(
            header_strs(get(&c)),
            ["x-request-id", "user-agent", "content-type"],
            "{setting}"
        );

        for bad in ["bad header", "", "x:y", "é", "(x)"] {
            let e = build_err(add(builder(), bad));
            assert_eq!(
                e.to_string(),
                format!("{setting}: invalid value {bad:?}: not a valid header name")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Retries, back-off, buffer, batch, timeouts
// ---------------------------------------------------------------------------

#[test]
fn export_retries() {
    for n in [0, 1, 3, 100] {
        assert_eq!(
            build_ok(builder().max_export_retries(n))
                .export_retry()
                .max_retries(),
            n
        );
    }
    assert_eq!(
        build_err(builder().max_export_retries(101)).to_string(),
        r#"max_export_retries: invalid value "101": must be at most 100"#
    );
    assert_names(
        &build_err(builder().max_export_retries(u32::MAX)),
        "max_export_retries",
    );
}

#[test]
fn backoff_rules() {
    let ms = Duration::from_millis;
    let c = build_ok(builder().backoff(ms(250), ms(250)));
    assert_eq!(c.export_retry().backoff_base(), ms(250));
    assert_eq!(c.export_retry().backoff_max(), ms(250));
    build_ok(builder().backoff(ms(1), Duration::from_secs(600)));
    build_ok(builder().backoff(Duration::from_secs(60), Duration::from_secs(60)));

    let cases = [
        (
            ms(0),
            ms(100),
            r#"backoff_base: invalid value "0 ms": must be within 1 ms..=60000 ms"#,
        ),
        (
            ms(60_001),
            ms(120_000),
            r#"backoff_base: invalid value "60001 ms": must be within 1 ms..=60000 ms"#,
        ),
        (
            ms(100),
            ms(50),
            r#"backoff_max: invalid value "50 ms": must be within 100 ms..=600000 ms"#,
        ),
        (
            ms(100),
            ms(0),
            r#"backoff_max: invalid value "0 ms": must be within 100 ms..=600000 ms"#,
        ),
        (
            ms(100),
            ms(600_001),
            r#"backoff_max: invalid value "600001 ms": must be within 100 ms..=600000 ms"#,
        ),
    ];
    for (base, max, message) in cases {
        assert_eq!(build_err(builder().backoff(base, max)).to_string(), message);
    }
}

#[test]
fn buffer_capacity_and_export_timeout() {
    assert_eq!(
        build_ok(builder().export_buffer_capacity(0))
            .export_retry()
            .buffer_capacity(),
        0
    );
    assert_eq!(
        build_ok(builder().export_buffer_capacity(10_000_000))
            .export_retry()
            .buffer_capacity(),
        10_000_000
    );
    assert_eq!(
        build_err(builder().export_buffer_capacity(10_000_001)).to_string(),
        r#"export_buffer_capacity: invalid value "10000001": must be within 0..=10000000"#
    );
    assert_eq!(
        build_ok(builder().export_buffer_bytes(0))
            .export_retry()
            .buffer_bytes(),
        0
    );
    assert_eq!(
        build_ok(builder().export_buffer_bytes(1 << 40))
            .export_retry()
            .buffer_bytes(),
        1 << 40
    );
    assert!(
        build_err(builder().export_buffer_bytes((1 << 40) + 1))
            .to_string()
            .starts_with("export_buffer_bytes: invalid value")
    );
    assert_eq!(
        build_ok(builder().export_timeout(Duration::from_millis(1)))
            .export_retry()
            .timeout(),
        Duration::from_millis(1)
    );
    build_ok(builder().export_timeout(Duration::from_secs(600)));
    assert_eq!(
        build_err(builder().export_timeout(Duration::ZERO)).to_string(),
        r#"export_timeout: invalid value "0 ms": must be within 1 ms..=600000 ms"#
    );
    assert_names(
        &build_err(builder().export_timeout(Duration::from_secs(601))),
        "export_timeout",
    );
}

#[test]
fn batch_rules() {
    let ms = Duration::from_millis;
    let c = build_ok(builder().batch(4096, 1024, ms(200)));
    assert_eq!(c.batch().max_queue_size(), 4096);
    assert_eq!(c.batch().max_export_batch_size(), 1024);
    assert_eq!(c.batch().scheduled_delay(), ms(200));
    build_ok(builder().batch(1, 1, ms(1)));
    build_ok(builder().batch(512, 512, Duration::from_secs(3600)));
    build_ok(builder().batch(10_000_000, 1, ms(1)));

    let cases = [
        (
            0,
            0,
            ms(5000),
            r#"batch_max_queue_size: invalid value "0": must be within 1..=10000000"#,
        ),
        (
            0,
            512,
            ms(5000),
            r#"batch_max_queue_size: invalid value "0": must be within 1..=10000000"#,
        ),
        (
            10_000_001,
            512,
            ms(5000),
            r#"batch_max_queue_size: invalid value "10000001": must be within 1..=10000000"#,
        ),
        (
            512,
            600,
            ms(5000),
            r#"batch_max_export_batch_size: invalid value "600": must be within 1..=512"#,
        ),
        (
            2048,
            0,
            ms(5000),
            r#"batch_max_export_batch_size: invalid value "0": must be within 1..=2048"#,
        ),
        (
            2048,
            512,
            ms(0),
            r#"batch_scheduled_delay: invalid value "0 ms": must be within 1 ms..=3600000 ms"#,
        ),
        (
            2048,
            512,
            ms(3_600_001),
            r#"batch_scheduled_delay: invalid value "3600001 ms": must be within 1 ms..=3600000 ms"#,
        ),
    ];
    for (queue, batch, delay, message) in cases {
        assert_eq!(
            build_err(builder().batch(queue, batch, delay)).to_string(),
            message
        );
    }
}

#[test]
fn shutdown_timeout_rules() {
    assert_eq!(
        build_ok(builder().shutdown_timeout(Duration::from_secs(60))).shutdown_timeout(),
        Duration::from_secs(60)
    );
    build_ok(builder().shutdown_timeout(Duration::from_millis(1)));
    assert_eq!(
        build_err(builder().shutdown_timeout(Duration::from_millis(60_001))).to_string(),
        r#"shutdown_timeout: invalid value "60001 ms": must be within 1 ms..=60000 ms"#
    );
    assert_eq!(
        build_err(builder().shutdown_timeout(Duration::from_secs(61))).to_string(),
        r#"shutdown_timeout: invalid value "61000 ms": must be within 1 ms..=60000 ms"#
    );
    assert_eq!(
        build_err(builder().shutdown_timeout(Duration::ZERO)).to_string(),
        r#"shutdown_timeout: invalid value "0 ms": must be within 1 ms..=60000 ms"#
    );
}

#[test]
fn first_broken_rule_is_reported() {
    // Validation runs in a fixed order: the service name comes before the rate.
    let e = build_err(builder().service_name("bad name").sample_rate(2.0));
    assert_eq!(e.setting(), Some("service_name"));
}

// ---------------------------------------------------------------------------
// Error type
// ---------------------------------------------------------------------------

#[test]
fn error_variants_display_and_setting() {
    let e = ConfigError::invalid("sample_rate", "2", "must be a number within 0.0..=1.0");
    assert_eq!(
        e.to_string(),
        r#"sample_rate: invalid value "2": must be a number within 0.0..=1.0"#
    );
    assert_eq!(e.setting(), Some("sample_rate"));

    let e = ConfigError::invalid_secret("otlp_headers", "bad");
    assert_eq!(
        e.to_string(),
        format!("otlp_headers: invalid value {HIDDEN}: bad")
    );

    let e = ConfigError::File {
        path: "/x.toml".into(),
        reason: "gone".into(),
        source: std::sync::Arc::new(std::io::Error::other("gone")),
    };
    assert_eq!(
        e.to_string(),
        "/x.toml: cannot read configuration file: gone"
    );
    assert_eq!(e.setting(), None);

    let e = ConfigError::Parse {
        path: "/x.json".into(),
        reason: "bad".into(),
    };
    assert_eq!(e.to_string(), "/x.json: invalid configuration file: bad");
    assert_eq!(e.setting(), None);
}

#[test]
fn error_value_is_quoted_escaped_and_cut() {
    let e = ConfigError::invalid("s", "a\"b\nc\u{1b}", "r");
    assert_eq!(e.to_string(), r#"s: invalid value "a\"b\nc\u{1b}": r"#);
    let exactly = "x".repeat(120);
    assert_eq!(
        ConfigError::invalid("s", &exactly, "r").to_string(),
        format!("s: invalid value {exactly:?}: r")
    );
    let long = format!("{}\n{}", "é".repeat(150), "y".repeat(10));
    let text = ConfigError::invalid("s", &long, "r").to_string();
    assert_eq!(
        text,
        format!(
            r#"s: invalid value "{}"... ({} bytes): r"#,
            "é".repeat(120),
            long.len()
        )
    );
}

// The keyed-hash key
// ---------------------------------------------------------------------------

#[test]
fn pii_hash_key_from_builder_env_and_file() {
    const KEY: &str = "hash-k3y-0123456789abcdef";
    assert_eq!(TracingConfig::default().pii_hash_key(), None);

    let c = build_ok(builder().pii_hash_key(KEY));
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));
    // Never shown by Debug, of the configuration or of its builder.
    for debug in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{:?}", builder().pii_hash_key(KEY)),
    ] {
        assert!(!debug.contains("hash-k3y"), "{debug}");
    }
    assert!(format!("{c:?}").contains("pii_hash_key: Some([REDACTED])"));
    // Round trip.
    assert_eq!(build_ok(c.to_builder()), c);

    let c = env_ok(&[("FAULTLINE_PII_HASH_KEY", KEY)]);
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));

    let f = TempPath::file("hash", ".toml", &format!("pii_hash_key = \"{KEY}\"\n"));
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));
    let f = TempPath::file("hash", ".json", &format!("{{\"pii_hash_key\": \"{KEY}\"}}"));
    let c = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(c.pii_hash_key(), Some(KEY.as_bytes()));
}

#[test]
fn pii_hash_key_must_be_16_bytes_and_is_never_quoted() {
    let short = "s3cret-short";
    for e in [
        build_err(builder().pii_hash_key(short)),
        env_err(&[("FAULTLINE_PII_HASH_KEY", short)]),
    ] {
        let text = e.to_string();
        assert!(!text.contains(short), "{text}");
        assert!(text.contains("at least 16 bytes"), "{text}");
    }
    assert_names(&build_err(builder().pii_hash_key(short)), "pii_hash_key");
    assert_names(
        &env_err(&[("FAULTLINE_PII_HASH_KEY", short)]),
        "FAULTLINE_PII_HASH_KEY",
    );
    // Exactly 16 bytes is enough.
    build_ok(builder().pii_hash_key("0123456789abcdef"));
    let f = TempPath::file(
        "hash-short",
        ".toml",
        &format!("pii_hash_key = \"{short}\"\n"),
    );
    let text = TracingConfig::from_file(f.path()).unwrap_err().to_string();
    assert!(!text.contains(short), "{text}");
}

#[test]
fn metrics_path_rules() {
    assert_eq!(build_ok(builder()).metrics_path(), Some("/metrics"));
    assert_eq!(
        build_ok(builder().metrics_path(Some("/internal/metrics"))).metrics_path(),
        Some("/internal/metrics")
    );
    assert_eq!(build_ok(builder().metrics_path(None)).metrics_path(), None);
    for bad in [
        "metrics",
        "",
        "/me trics",
        "/metrics?x=1",
        "/a#b",
        "/%2e",
        "/\u{e9}",
    ] {
        let e = build_err(builder().metrics_path(Some(bad))).to_string();
        assert!(e.starts_with("metrics_path: invalid value"), "{bad:?}: {e}");
    }
    assert_eq!(
        env_ok(&[("FAULTLINE_METRICS_PATH", "/prom")]).metrics_path(),
        Some("/prom")
    );
    assert_eq!(
        env_ok(&[("FAULTLINE_METRICS_PATH", "off")]).metrics_path(),
        None
    );
    assert_eq!(
        env_err(&[("FAULTLINE_METRICS_PATH", "/a b")]).to_string(),
        r#"FAULTLINE_METRICS_PATH: invalid value "/a b": must be a plain path: visible ASCII, no ?, # or %"#
    );
}

#[test]
fn excluded_routes_from_the_builder_the_environment_and_a_file() {
    assert!(build_ok(builder()).excluded_routes().is_empty());
    let c = build_ok(builder().excluded_routes(["/health", "/users/{id}"]));
    assert!(c.excluded_routes().matches("/users/7"));
    assert!(!c.excluded_routes().matches("/users"));
    let c = env_ok(&[("FAULTLINE_EXCLUDED_ROUTES", " /health, /internal/* ,")]);
    assert_eq!(c.excluded_routes().to_strings(), ["/health", "/internal/*"]);
    assert!(c.excluded_routes().matches("/internal/ready"));
    assert_eq!(
        env_err(&[("FAULTLINE_EXCLUDED_ROUTES", "/health,ready")]).to_string(),
        r#"FAULTLINE_EXCLUDED_ROUTES: invalid value "/health,ready": "ready" must start with /"#
    );
    let e = build_err(builder().excluded_routes(["/users/{id"])).to_string();
    assert!(e.starts_with("excluded_routes: invalid value"), "{e}");
    // Read back through the builder: the same routes.
    let again = build_ok(c.to_builder());
    assert_eq!(again.excluded_routes(), c.excluded_routes());
    let f = TempPath::file(
        "excluded",
        ".toml",
        "excluded_routes = [\"/health\", \"/u/{id}\"]\n",
    );
    let from_file = TracingConfig::from_file(f.path()).unwrap();
    assert_eq!(
        from_file.excluded_routes().to_strings(),
        ["/health", "/u/{id}"]
    );
    let f = TempPath::file("excluded-bad", ".toml", "excluded_routes = [\"health\"]\n");
    let e = TracingConfig::from_file(f.path()).unwrap_err().to_string();
    assert!(e.contains("excluded_routes"), "{e}");
}

#[test]
fn keep_errors_rules() {
    let c = build_ok(builder());
    assert!(c.keep_errors().enabled());
    assert_eq!(c.keep_errors().max_traces(), 4096);
    assert_eq!(c.keep_errors().max_spans_per_trace(), 128);
    let c = env_ok(&[
        ("FAULTLINE_KEEP_ERRORS", "false"),
        ("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "100"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "7"),
    ]);
    assert!(!c.keep_errors().enabled());
    assert_eq!(c.keep_errors().max_traces(), 100);
    assert_eq!(c.keep_errors().max_spans_per_trace(), 7);
    assert_eq!(
        env_err(&[("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "2000000")]).to_string(),
        r#"FAULTLINE_KEEP_ERRORS_MAX_TRACES: invalid value "2000000": must be within 1..=1000000"#
    );
    assert!(
        build_err(builder().keep_errors_caps(0, 1))
            .to_string()
            .starts_with("keep_errors_max_traces:")
    );
}

#[test]
fn limits_rules() {
    let l = *build_ok(builder()).limits();
    assert_eq!(l.attribute_value_length(), 16384);
    assert_eq!(
        (
            l.attributes_per_span(),
            l.events_per_span(),
            l.links_per_span()
        ),
        (128, 128, 128)
    );
    let c = env_ok(&[
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "200"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "5"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "3"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "4"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "2"),
    ]);
    let l = c.limits();
    assert_eq!(
        l.attribute_value_length(),
        200,
        "the span-specific variable wins"
    );
    assert_eq!(l.attributes_per_span(), 10);
    assert_eq!(l.events_per_span(), 5);
    assert_eq!(l.links_per_span(), 3);
    assert_eq!(l.attributes_per_event(), 4);
    assert_eq!(l.attributes_per_link(), 2);
    assert_eq!(
        env_err(&[("OTEL_SPAN_EVENT_COUNT_LIMIT", "70000")]).to_string(),
        r#"OTEL_SPAN_EVENT_COUNT_LIMIT: invalid value "70000": must be within 1..=65536"#
    );
    assert!(
        build_err(builder().attribute_value_length_limit(4))
            .to_string()
            .starts_with("attribute_value_length_limit:")
    );
    assert!(
        build_err(builder().span_count_limits(1, 0, 1))
            .to_string()
            .starts_with("events_per_span:")
    );
}

#[test]
fn trusted_peers_rules() {
    use super::PeerNet;
    use std::net::IpAddr;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let net = |s: &str| PeerNet::parse(s).unwrap_or_else(|| panic!("{s}"));
    assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
    assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
    assert!(net("192.168.1.5").contains(ip("192.168.1.5")));
    assert!(!net("192.168.1.5").contains(ip("192.168.1.6")));
    assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
    assert!(net("fd00::/8").contains(ip("fd12::1")));
    assert!(!net("fd00::/8").contains(ip("fe80::1")));
    assert!(
        net("10.0.0.0/8").contains(ip("::ffff:10.1.1.1")),
        "IPv4-mapped"
    );
    assert!(!net("10.0.0.0/8").contains(ip("fd00::1")));
    for bad in [
        "",
        "10.0.0.0/33",
        "10.0.0/8",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "host",
    ] {
        assert!(PeerNet::parse(bad).is_none(), "{bad:?}");
    }

    let c = env_ok(&[("FAULTLINE_TRUSTED_PEERS", "10.0.0.0/8, 192.168.1.5")]);
    assert_eq!(c.trusted_peers().len(), 2);
    assert!(c.trusts(Some(ip("10.9.9.9"))));
    assert!(!c.trusts(Some(ip("203.0.113.7"))));
    assert!(!c.trusts(None), "an unknown peer is not trusted");
    let all = build_ok(builder());
    assert!(all.trusts(None) && all.trusts(Some(ip("203.0.113.7"))));
    let off = build_ok(
        builder()
            .trust_incoming_context(false)
            .trusted_peers([net("10.0.0.0/8")]),
    );
    assert!(!off.trusts(Some(ip("10.1.1.1"))), "the global switch wins");
    assert_eq!(
        env_err(&[("FAULTLINE_TRUSTED_PEERS", "10.0.0.0/8,lb")]).to_string(),
        r#"FAULTLINE_TRUSTED_PEERS: invalid value "lb": must be a comma-separated list of IP addresses or networks (10.0.0.0/8)"#
    );
}
