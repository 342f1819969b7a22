//! The environment, read through `with_env_from` (never the process environment).

use super::*;

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

#[test]
fn env_service_name() {
    assert_eq!(
        env_ok(&[("OTEL_SERVICE_NAME", "checkout")]).service_name(),
        "checkout"
    );
    assert_eq!(
        env_err(&[("OTEL_SERVICE_NAME", "check out")]).to_string(),
        r#"OTEL_SERVICE_NAME: invalid value "check out": only ASCII letters, digits and hyphens are allowed"#
    );
    let e = env_err(&[("OTEL_SERVICE_NAME", "unknown_service")]);
    assert_names(&e, "OTEL_SERVICE_NAME");
}

#[test]
fn env_resource_attributes() {
    let c = env_ok(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=checkout,service.version=1.2.3, deployment.environment.name = prod ,\
         team=pay%20ments,note=a%3Db%2Cc%25,owner=Zo%C3%AB,team2=x=y",
    )]);
    assert_eq!(c.service_name(), "checkout");
    assert_eq!(c.service_version(), Some("1.2.3"));
    assert_eq!(c.deployment_environment(), Some("prod"));
    let attrs: HashMap<&str, &str> = c
        .resource_attributes()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attrs.len(), 4, "{attrs:?}");
    assert_eq!(attrs["team"], "pay ments");
    assert_eq!(attrs["note"], "a=b,c%");
    assert_eq!(attrs["owner"], "Zoë");
    assert_eq!(attrs["team2"], "x=y");
    // The picked-out keys are not repeated as plain attributes.
    assert!(!attrs.contains_key("service.name"));
    assert!(!attrs.contains_key("service.version"));
    assert!(!attrs.contains_key("deployment.environment.name"));

    // The older key name is understood too.
    let c = env_ok(&[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")]);
    assert_eq!(c.deployment_environment(), Some("staging"));
    assert!(c.resource_attributes().is_empty());

    // A repeated key: the last one wins.
    let c = env_ok(&[("OTEL_RESOURCE_ATTRIBUTES", "team=a,team=b")]);
    assert_eq!(
        c.resource_attributes(),
        &[("team".to_owned(), "b".to_owned())]
    );

    // Empty entries are skipped.
    let c = env_ok(&[("OTEL_RESOURCE_ATTRIBUTES", ",,team=a,,")]);
    assert_eq!(c.resource_attributes().len(), 1);
}

#[test]
fn env_service_name_wins_over_resource_attribute() {
    let c = env_ok(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attributes,service.version=1.0",
        ),
        ("OTEL_SERVICE_NAME", "from-variable"),
    ]);
    assert_eq!(c.service_name(), "from-variable");
    assert_eq!(c.service_version(), Some("1.0"));

    // FAULTLINE_SERVICE_VERSION and FAULTLINE_ENVIRONMENT win over the attributes too.
    let c = env_ok(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=1.0,deployment.environment.name=prod",
        ),
        ("FAULTLINE_SERVICE_VERSION", "2.0"),
        ("FAULTLINE_ENVIRONMENT", "staging"),
    ]);
    assert_eq!(c.service_version(), Some("2.0"));
    assert_eq!(c.deployment_environment(), Some("staging"));
}

#[test]
fn env_resource_attribute_errors() {
    let cases = [
        (
            "novalue",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "novalue": entry 1 is not key=value"#,
        ),
        (
            "a=1,=x",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "=x": entry 2 has an empty key"#,
        ),
        (
            "a=%zz",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a=%zz": entry 1 has a bad percent-encoding"#,
        ),
        (
            "a=100%",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a=100%": entry 1 has a bad percent-encoding"#,
        ),
        (
            "a=%ff",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a=%ff": entry 1 has a bad percent-encoding"#,
        ),
        (
            "service.name=bad_name",
            r#"OTEL_RESOURCE_ATTRIBUTES service.name: invalid value "bad_name": only ASCII letters, digits and hyphens are allowed"#,
        ),
        (
            "my key=v",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "my key": an attribute key must be printable ASCII without spaces"#,
        ),
        (
            "team=a%0Ab",
            r#"OTEL_RESOURCE_ATTRIBUTES: invalid value "a\nb": the value of `team` must not hold control characters"#,
        ),
    ];
    for (value, message) in cases {
        assert_eq!(
            env_err(&[("OTEL_RESOURCE_ATTRIBUTES", value)]).to_string(),
            message,
            "{value}"
        );
    }
}

#[test]
fn percent_decoding() {
    let cases: &[(&str, Option<&str>)] = &[
        ("plain", Some("plain")),
        ("", Some("")),
        ("a%20b", Some("a b")),
        ("%2c%2C", Some(",,")),
        ("%3D%25", Some("=%")),
        ("%C3%A9t%C3%A9", Some("été")),
        ("é", Some("é")),
        ("a+b", Some("a+b")),
        ("%", None),
        ("%4", None),
        ("%zz", None),
        ("%g0", None),
        ("%ff", None),
        ("%C3", None),
    ];
    for (input, expected) in cases {
        assert_eq!(
            crate::config::env::decode_for_test(input).as_deref(),
            *expected,
            "{input:?}"
        );
    }
}

#[test]
fn env_samplers() {
    type Case = (&'static str, Option<&'static str>, bool, f64);
    let cases: &[Case] = &[
        ("always_on", None, false, 1.0),
        ("always_on", Some("0.5"), false, 1.0),
        ("always_off", None, false, 0.0),
        ("always_off", Some("0.5"), false, 0.0),
        ("traceidratio", None, false, 1.0),
        ("traceidratio", Some("0.25"), false, 0.25),
        ("traceidratio", Some("0"), false, 0.0),
        ("traceidratio", Some(" 1 "), false, 1.0),
        ("parentbased_always_on", None, true, 1.0),
        ("parentbased_always_on", Some("0.5"), true, 1.0),
        ("parentbased_always_off", None, true, 0.0),
        ("parentbased_always_off", Some("0.5"), true, 0.0),
        ("parentbased_traceidratio", None, true, 1.0),
        ("parentbased_traceidratio", Some("0.1"), true, 0.1),
        ("parentbased_traceidratio", Some("1.0"), true, 1.0),
        (" traceidratio ", Some("0.5"), false, 0.5),
    ];
    for (sampler, arg, parent_based, rate) in cases {
        let mut vars = vec![("OTEL_TRACES_SAMPLER", *sampler)];
        if let Some(arg) = arg {
            vars.push(("OTEL_TRACES_SAMPLER_ARG", *arg));
        }
        let c = env_ok(&vars);
        assert_eq!(c.parent_based(), *parent_based, "{vars:?}");
        assert_eq!(c.sample_rate(), *rate, "{vars:?}");
    }
    // The argument alone changes nothing.
    let c = env_ok(&[("OTEL_TRACES_SAMPLER_ARG", "0.5")]);
    assert!(c.parent_based());
    assert_eq!(c.sample_rate(), 1.0);
    // The environment replaces what the builder held.
    let map = env_map(&[("OTEL_TRACES_SAMPLER", "always_on")]);
    let c = build_ok(
        builder()
            .parent_based(true)
            .sample_rate(0.3)
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert!(!c.parent_based());
    assert_eq!(c.sample_rate(), 1.0);
}

#[test]
fn env_sampler_errors() {
    for sampler in ["traceidratio", "parentbased_traceidratio"] {
        for arg in ["abc", "1.5", "-0.1", "NaN", "inf", "50%"] {
            let e = env_err(&[
                ("OTEL_TRACES_SAMPLER", sampler),
                ("OTEL_TRACES_SAMPLER_ARG", arg),
            ]);
            assert_eq!(
                e.to_string(),
                format!(
                    "OTEL_TRACES_SAMPLER_ARG: invalid value {arg:?}: must be a number within 0.0..=1.0"
                ),
            );
        }
    }
    // Names are case-insensitive, as the specification asks.
    assert_eq!(
        env_ok(&[("OTEL_TRACES_SAMPLER", "ALWAYS_OFF")]).sample_rate(),
        0.0
    );
    for sampler in ["always-on", "x ray", "per/route"] {
        let e = env_err(&[("OTEL_TRACES_SAMPLER", sampler)]);
        assert_names(&e, "OTEL_TRACES_SAMPLER");
        assert!(e.to_string().contains(&format!("{sampler:?}")), "{e}");
    }
    // Other plain names are registered samplers' names, checked when the
    // engine is built (EngineBuilder::register_sampler).
    for sampler in ["jaeger_remote", "xray", "AlwaysOn"] {
        let c = env_ok(&[("OTEL_TRACES_SAMPLER", sampler)]);
        assert_eq!(
            c.custom_sampler(),
            Some(sampler.to_ascii_lowercase().as_str())
        );
    }
}

#[test]
fn env_exporters() {
    let cases: &[(&str, &[&str])] = &[
        ("otlp", &["otlp"]),
        ("jaeger", &["jaeger"]),
        ("console", &["console"]),
        ("stdout", &["console"]),
        ("none", &[]),
        ("none,none", &[]),
        ("console,otlp", &["console", "otlp"]),
        ("otlp,jaeger,console", &["otlp", "jaeger", "console"]),
        ("otlp,otlp", &["otlp"]),
        ("stdout,console", &["console"]),
        (" otlp , jaeger ", &["otlp", "jaeger"]),
        ("otlp,,jaeger,", &["otlp", "jaeger"]),
        // Any well-formed name: the engine's builder finds it among the registered ones.
        ("otlp,mine", &["otlp", "mine"]),
        ("Mine,OTLP", &["mine", "otlp"]),
    ];
    for (value, expected) in cases {
        let expected: Vec<ExporterKind> = expected
            .iter()
            .map(|n| ExporterKind::named(n.to_string()))
            .collect();
        assert_eq!(
            env_ok(&[("OTEL_TRACES_EXPORTER", value)]).exporters(),
            expected,
            "{value}"
        );
    }
}

#[test]
fn env_exporter_errors() {
    assert_eq!(
        env_err(&[("OTEL_TRACES_EXPORTER", "none,otlp")]).to_string(),
        r#"OTEL_TRACES_EXPORTER: invalid value "none,otlp": `none` cannot be combined with other exporters"#
    );
    assert_names(
        &env_err(&[("OTEL_TRACES_EXPORTER", "console, none")]),
        "OTEL_TRACES_EXPORTER",
    );
    assert_eq!(
        env_err(&[("OTEL_TRACES_EXPORTER", "otlp,zip/kin")]).to_string(),
        r#"OTEL_TRACES_EXPORTER: invalid value "zip/kin": not an exporter name (1 to 64 lowercase ASCII letters, digits, `-`, `_` or `.`, starting with a letter)"#
    );
    assert_names(
        &env_err(&[("OTEL_TRACES_EXPORTER", "log ging")]),
        "OTEL_TRACES_EXPORTER",
    );
}

#[test]
fn env_batch_processor() {
    let c = env_ok(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "1000"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "20000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1024"),
    ]);
    assert_eq!(c.batch().scheduled_delay(), Duration::from_millis(1000));
    assert_eq!(c.export_retry().timeout(), Duration::from_millis(20_000));
    assert_eq!(c.batch().max_queue_size(), 4096);
    assert_eq!(c.batch().max_export_batch_size(), 1024);

    for var in ["OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] {
        assert_eq!(
            env_err(&[(var, "0")]).to_string(),
            format!(r#"{var}: invalid value "0": must be at least 1"#)
        );
        for bad in ["abc", "-5", "1.5"] {
            assert_eq!(
                env_err(&[(var, bad)]).to_string(),
                format!("{var}: invalid value {bad:?}: must be a whole number")
            );
        }
    }
    // A batch larger than the queue fails at build time.
    let e = env_err(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
    ]);
    assert_eq!(
        e.to_string(),
        r#"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: invalid value "200": must be within 1..=100"#
    );
    assert_names(
        &env_err(&[("OTEL_BSP_SCHEDULE_DELAY", "0")]),
        "OTEL_BSP_SCHEDULE_DELAY",
    );
}

#[test]
fn env_sdk_disabled() {
    for (value, enabled) in [
        ("true", false),
        ("TRUE", false),
        ("True", false),
        ("1", false),
        ("yes", false),
        ("on", false),
        ("false", true),
        ("FALSE", true),
        ("0", true),
        ("no", true),
        ("off", true),
        (" true ", false),
    ] {
        assert_eq!(
            env_ok(&[("OTEL_SDK_DISABLED", value)]).enabled(),
            enabled,
            "{value}"
        );
    }
    assert_eq!(
        env_err(&[("OTEL_SDK_DISABLED", "maybe")]).to_string(),
        r#"OTEL_SDK_DISABLED: invalid value "maybe": must be true or false"#
    );
    // The builder's own value is replaced.
    let map = env_map(&[("OTEL_SDK_DISABLED", "false")]);
    let c = build_ok(
        builder()
            .enabled(false)
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert!(c.enabled());
}

#[test]
fn env_faultline_text_and_format() {
    let c = env_ok(&[
        ("FAULTLINE_SERVICE_VERSION", "2.0.1"),
        ("FAULTLINE_ENVIRONMENT", "staging"),
        ("FAULTLINE_CONSOLE_FORMAT", "json"),
    ]);
    assert_eq!(c.service_version(), Some("2.0.1"));
    assert_eq!(c.deployment_environment(), Some("staging"));
    assert_eq!(c.console_format(), ConsoleFormat::Json);
    assert_eq!(
        env_ok(&[("FAULTLINE_CONSOLE_FORMAT", " pretty ")]).console_format(),
        ConsoleFormat::Pretty
    );

    assert_eq!(
        env_err(&[("FAULTLINE_SERVICE_VERSION", "1.0\u{7}")]).to_string(),
        r#"FAULTLINE_SERVICE_VERSION: invalid value "1.0\u{7}": must not hold control characters"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_ENVIRONMENT", "prod\nx")]).to_string(),
        r#"FAULTLINE_ENVIRONMENT: invalid value "prod\nx": must not hold control characters"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_CONSOLE_FORMAT", "yaml")]).to_string(),
        r#"FAULTLINE_CONSOLE_FORMAT: invalid value "yaml": must be pretty or json"#
    );
}

#[test]
fn env_faultline_masking() {
    assert!(!env_ok(&[("FAULTLINE_PII_MASKING", "false")]).pii_masking());
    assert!(env_ok(&[("FAULTLINE_PII_MASKING", "on")]).pii_masking());
    assert_eq!(
        env_err(&[("FAULTLINE_PII_MASKING", "sometimes")]).to_string(),
        r#"FAULTLINE_PII_MASKING: invalid value "sometimes": must be true or false"#
    );

    let c = env_ok(&[(
        "FAULTLINE_PII_PATTERNS",
        r#"{"order_id": "ORD-[0-9]{8}", "card": {"regex": "\\d{12}(\\d{4})", "replacement": "****$1"}, "iban": {"regex": "[A-Z]{2}[0-9]{20}"}}"#,
    )]);
    let by_name: HashMap<&str, &PiiPattern> =
        c.pii_patterns().iter().map(|p| (p.name(), p)).collect();
    assert_eq!(by_name.len(), 3);
    assert_eq!(by_name["order_id"].regex().as_str(), "ORD-[0-9]{8}");
    assert_eq!(
        by_name["order_id"].replacement(),
        DEFAULT_PATTERN_REPLACEMENT
    );
    assert_eq!(by_name["card"].regex().as_str(), r"\d{12}(\d{4})");
    assert_eq!(by_name["card"].replacement(), "****$1");
    assert_eq!(by_name["iban"].replacement(), DEFAULT_PATTERN_REPLACEMENT);

    // The variable replaces patterns set in code.
    let map = env_map(&[("FAULTLINE_PII_PATTERNS", r#"{"b": "b+"}"#)]);
    let c = build_ok(
        builder()
            .pii_pattern("a", "a+")
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert_eq!(c.pii_patterns().len(), 1);
    assert_eq!(c.pii_patterns()[0].name(), "b");

    let e = env_err(&[("FAULTLINE_PII_PATTERNS", "not json")]);
    assert_names(&e, "FAULTLINE_PII_PATTERNS");
    assert!(
        e.to_string()
            .contains("must be a JSON object of name -> regex"),
        "{e}"
    );
    assert_names(
        &env_err(&[("FAULTLINE_PII_PATTERNS", r#"["a"]"#)]),
        "FAULTLINE_PII_PATTERNS",
    );
    assert_names(
        &env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": 5}"#)]),
        "FAULTLINE_PII_PATTERNS",
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"bad name": "x+"}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS: invalid value "bad name": a pattern name must be ASCII letters, digits, `_` or `-`"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": "("}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS.x: invalid value "(": the expression does not compile (error: unclosed group)"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": "a*"}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS.x: invalid value "a*": the expression matches the empty string"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_PII_PATTERNS", r#"{"x": {"regex": ""}}"#)]).to_string(),
        r#"FAULTLINE_PII_PATTERNS.x: invalid value "": the expression is empty"#
    );
}

#[test]
fn env_faultline_keys_and_headers() {
    let c = env_ok(&[("FAULTLINE_SECRET_KEYS", "Api-Key, session_token,,")]);
    assert_eq!(c.secret_keys(), &["api-key", "session_token"]);
    assert_eq!(
        env_err(&[("FAULTLINE_SECRET_KEYS", "ok,api key")]).to_string(),
        r#"FAULTLINE_SECRET_KEYS: invalid value "api key": a key must be printable ASCII without spaces"#
    );

    for (var, get) in [
        (
            "FAULTLINE_CAPTURE_REQUEST_HEADERS",
            TracingConfig::capture_request_headers as HeaderGetter,
        ),
        (
            "FAULTLINE_CAPTURE_RESPONSE_HEADERS",
            TracingConfig::capture_response_headers,
        ),
        ("FAULTLINE_REDACT_HEADERS", TracingConfig::redact_headers),
    ] {
        let c = env_ok(&[(var, "X-Request-Id, user-agent,,x-request-id")]);
        assert_eq!(
            header_strs(get(&c)),
            ["x-request-id", "user-agent"],
            "{var}"
        );
        assert_eq!(
            env_err(&[(var, "x-ok, bad header")]).to_string(),
            format!(r#"{var}: invalid value "bad header": not a valid header name"#)
        );
    }
}

#[test]
fn env_faultline_retry_and_shutdown() {
    let c = env_ok(&[
        ("FAULTLINE_EXPORT_MAX_RETRIES", "7"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "250"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "10000"),
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "100"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "1048576"),
        ("FAULTLINE_TRUST_INCOMING_CONTEXT", "false"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "30000"),
    ]);
    let r = c.export_retry();
    assert_eq!(r.max_retries(), 7);
    assert_eq!(r.backoff_base(), Duration::from_millis(250));
    assert_eq!(r.backoff_max(), Duration::from_millis(10_000));
    assert_eq!(r.buffer_capacity(), 100);
    assert_eq!(r.buffer_bytes(), 1 << 20);
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_BUFFER_BYTES", "32MiB")]).to_string(),
        r#"FAULTLINE_EXPORT_BUFFER_BYTES: invalid value "32MiB": must be a whole number"#
    );
    assert!(!c.trust_incoming_context());
    assert_eq!(c.shutdown_timeout(), Duration::from_secs(30));

    assert_eq!(
        env_ok(&[("FAULTLINE_EXPORT_MAX_RETRIES", "100")])
            .export_retry()
            .max_retries(),
        100
    );
    assert_eq!(
        env_ok(&[("FAULTLINE_EXPORT_BUFFER_CAPACITY", "0")])
            .export_retry()
            .buffer_capacity(),
        0
    );
    assert!(env_ok(&[("FAULTLINE_TRUST_INCOMING_CONTEXT", "yes")]).trust_incoming_context());

    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_MAX_RETRIES", "101")]).to_string(),
        r#"FAULTLINE_EXPORT_MAX_RETRIES: invalid value "101": must be at most 100"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_MAX_RETRIES", "99999999999")]).to_string(),
        r#"FAULTLINE_EXPORT_MAX_RETRIES: invalid value "99999999999": must be at most 100"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_MAX_RETRIES", "three")]).to_string(),
        r#"FAULTLINE_EXPORT_MAX_RETRIES: invalid value "three": must be a whole number"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_BUFFER_CAPACITY", "-1")]).to_string(),
        r#"FAULTLINE_EXPORT_BUFFER_CAPACITY: invalid value "-1": must be a whole number"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_TRUST_INCOMING_CONTEXT", "maybe")]).to_string(),
        r#"FAULTLINE_TRUST_INCOMING_CONTEXT: invalid value "maybe": must be true or false"#
    );
    // Well-formed values that break a rule fail at build time, under the
    // variable the value came from.
    assert_eq!(
        env_err(&[
            ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "2000"),
            ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "1000")
        ])
        .to_string(),
        r#"FAULTLINE_EXPORT_BACKOFF_MAX_MS: invalid value "1000 ms": must be within 2000 ms..=600000 ms"#
    );
    assert_eq!(
        env_err(&[("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "61000")]).to_string(),
        r#"FAULTLINE_SHUTDOWN_TIMEOUT_MS: invalid value "61000 ms": must be within 1 ms..=60000 ms"#
    );
    for (var, value) in [
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "10000001"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "0"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "50"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000"),
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "0"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "20000000"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "2000000000000"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "100001"),
    ] {
        assert_names(&env_err(&[(var, value)]), var);
    }
    // A base above the default maximum names the base the user set, with
    // the maximum it must stay under.
    assert_eq!(
        env_err(&[("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "10000")]).to_string(),
        r#"FAULTLINE_EXPORT_BACKOFF_BASE_MS: invalid value "10000 ms": must be at most the maximum back-off, 5000 ms (FAULTLINE_EXPORT_BACKOFF_MAX_MS)"#
    );
    // The same values from code keep the settings' names.
    assert_names(
        &build_err(builder().shutdown_timeout(Duration::from_secs(61))),
        "shutdown_timeout",
    );
}

#[test]
fn env_empty_values_count_as_unset() {
    let default = TracingConfig::default();
    for blank in ["", "   ", "\t"] {
        let all: Vec<(&str, &str)> = ENV_VARIABLES.iter().map(|v| (*v, blank)).collect();
        assert_eq!(env_ok(&all), default, "all variables set to {blank:?}");
        for var in ENV_VARIABLES {
            assert_eq!(env_ok(&[(var, blank)]), default, "{var}={blank:?}");
        }
    }
    // An empty variable keeps the builder's value.
    let map = env_map(&[("OTEL_SERVICE_NAME", ""), ("OTEL_TRACES_SAMPLER", "")]);
    let c = build_ok(
        builder()
            .service_name("from-code")
            .sample_rate(0.5)
            .with_env_from(|n| map.get(n).cloned())
            .unwrap(),
    );
    assert_eq!(c.service_name(), "from-code");
    assert_eq!(c.sample_rate(), 0.5);
}

#[test]
fn env_unset_variables_keep_builder_values() {
    let code = builder()
        .service_name("from-code")
        .sample_rate(0.5)
        .exporters([ExporterKind::CONSOLE])
        .shutdown_timeout(Duration::from_secs(9));
    let expected = build_ok(code.clone());
    assert_eq!(build_ok(code.with_env_from(|_| None).unwrap()), expected);
}

#[test]
fn env_exporter_variables_are_the_plugins_not_the_engines() {
    // The exporters' own variables belong to their plugins: the engine
    // neither reads nor rejects them.
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://not-read"),
        ("OTEL_EXPORTER_JAEGER_AGENT_PORT", "0"),
    ]);
    assert_eq!(c, TracingConfig::default());
    assert!(
        ENV_VARIABLES
            .iter()
            .all(|v| !v.starts_with("OTEL_EXPORTER_"))
    );
}

#[test]
fn env_variables_list_matches_what_is_read() {
    let asked = RefCell::new(BTreeSet::new());
    TracingConfig::builder()
        .with_env_from(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        })
        .unwrap();
    let listed: BTreeSet<String> = ENV_VARIABLES.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(
        listed.len(),
        ENV_VARIABLES.len(),
        "ENV_VARIABLES holds a duplicate"
    );
    assert_eq!(asked.into_inner(), listed);
}

#[test]
fn env_every_variable_is_read_and_named_in_its_error() {
    let bad: &[(&str, &str)] = &[
        ("OTEL_SDK_DISABLED", "maybe"),
        ("OTEL_SERVICE_NAME", "bad name"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ("OTEL_TRACES_SAMPLER", "some times"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_TRACES_EXPORTER", "zip kin"),
        ("OTEL_PROPAGATORS", "x/ray"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "soon"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("FAULTLINE_SERVICE_VERSION", "1.0\u{7}"),
        ("FAULTLINE_ENVIRONMENT", "prod\u{1b}"),
        ("FAULTLINE_CONSOLE_FORMAT", "yaml"),
        ("FAULTLINE_PII_MASKING", "sometimes"),
        ("FAULTLINE_PII_PATTERNS", "not json"),
        ("FAULTLINE_PII_HASH_KEY", "too-short"),
        ("FAULTLINE_SECRET_KEYS", "api key"),
        ("FAULTLINE_CAPTURE_REQUEST_HEADERS", "bad header"),
        ("FAULTLINE_CAPTURE_RESPONSE_HEADERS", "bad header"),
        ("FAULTLINE_REDACT_HEADERS", "bad header"),
        ("FAULTLINE_EXPORT_MAX_RETRIES", "101"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "soon"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "soon"),
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "lots"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "lots"),
        ("FAULTLINE_TRUST_INCOMING_CONTEXT", "maybe"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "soon"),
        ("FAULTLINE_METRICS_PATH", "metrics"),
        ("FAULTLINE_EXCLUDED_ROUTES", "health"),
        ("FAULTLINE_KEEP_ERRORS", "sometimes"),
        ("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "0"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "lots"),
        ("FAULTLINE_KEEP_SLOW_MS", "slow"),
        ("FAULTLINE_METRICS_ADDR", "localhost"),
        ("FAULTLINE_RESOURCE_DETECTORS", "k8s"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "huge"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "0"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "100000"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "-1"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "x"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "0"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "1.5"),
        ("FAULTLINE_TRUSTED_PEERS", "10.0.0.0/8,proxy.local"),
        ("OTEL_LOGS_EXPORTER", "ot lp"),
        ("FAULTLINE_LOG_FORMAT", "xml"),
    ];
    let covered: BTreeSet<&str> = bad.iter().map(|(v, _)| *v).collect();
    let listed: BTreeSet<&str> = ENV_VARIABLES.iter().copied().collect();
    assert_eq!(
        covered, listed,
        "the table must cover ENV_VARIABLES exactly"
    );

    for (var, value) in bad {
        let mut vars = vec![(*var, *value)];
        if *var == "OTEL_TRACES_SAMPLER_ARG" {
            vars.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
        }
        // The error comes from reading the variable, before build.
        let e = match with_env(&vars) {
            Ok(_) => panic!("{var}={value:?} should be rejected"),
            Err(e) => e,
        };
        assert_names(&e, var);
    }
}

// ---------------------------------------------------------------------------

#[test]
fn env_propagators() {
    use super::PropagatorKind as P;
    assert_eq!(
        TracingConfig::default().propagators(),
        [P::TRACE_CONTEXT, P::BAGGAGE]
    );
    let cases: &[(&str, &[P])] = &[
        ("tracecontext", &[P::TRACE_CONTEXT]),
        (
            "b3, tracecontext,baggage",
            &[P::B3, P::TRACE_CONTEXT, P::BAGGAGE],
        ),
        ("B3MULTI,jaeger,b3multi", &[P::B3_MULTI, P::JAEGER]),
        ("none", &[]),
    ];
    for (value, want) in cases {
        assert_eq!(
            env_ok(&[("OTEL_PROPAGATORS", value)]).propagators(),
            *want,
            "{value}"
        );
    }
    // Any well-formed name parses (the engine's builder finds it among the
    // registered propagators); a malformed one breaks the name rule.
    assert_eq!(
        env_ok(&[("OTEL_PROPAGATORS", "tracecontext,XRay")]).propagators(),
        [P::TRACE_CONTEXT, P::named("xray")]
    );
    assert_eq!(
        env_err(&[("OTEL_PROPAGATORS", "tracecontext,x/ray")]).to_string(),
        "OTEL_PROPAGATORS: invalid value \"x/ray\": not a propagator name \
         (1 to 64 lowercase ASCII letters, digits, `-`, `_` or `.`, starting with a letter)"
    );
    assert_names(
        &env_err(&[("OTEL_PROPAGATORS", "none,b3")]),
        "OTEL_PROPAGATORS",
    );
}

#[test]
fn env_queue_size_alone_shrinks_the_default_batch() {
    let c = env_ok(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]);
    assert_eq!(c.batch().max_queue_size(), 100);
    assert_eq!(c.batch().max_export_batch_size(), 100);
    // Both given and inconsistent: an error naming the batch size.
    let e = env_err(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200"),
    ]);
    assert_eq!(e.setting(), Some("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"));
}

// ---------------------------------------------------------------------------

#[test]
fn env_durations_are_whole_milliseconds() {
    assert_eq!(
        env_ok(&[("OTEL_BSP_EXPORT_TIMEOUT", "7000")])
            .export_retry()
            .timeout(),
        Duration::from_millis(7000)
    );
    for var in [
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_SCHEDULE_DELAY",
        "FAULTLINE_EXPORT_BACKOFF_BASE_MS",
        "FAULTLINE_EXPORT_BACKOFF_MAX_MS",
        "FAULTLINE_SHUTDOWN_TIMEOUT_MS",
    ] {
        for bad in ["10s", "1.5", "-1", "abc", "99999999999999999999"] {
            assert_eq!(
                env_err(&[(var, bad)]).to_string(),
                format!("{var}: invalid value {bad:?}: must be a whole number of milliseconds")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The table (table.rs): one entry, the same setting everywhere
// ---------------------------------------------------------------------------

#[test]
fn env_table_rules_are_checked_when_read() {
    // A value that breaks its setting's own rule fails as the variable is
    // read, under the variable; the same value from code fails at build,
    // under the setting.
    for (var, value, reason) in [
        (
            "FAULTLINE_SHUTDOWN_TIMEOUT_MS",
            "61000",
            "must be within 1 ms..=60000 ms",
        ),
        (
            "OTEL_BSP_SCHEDULE_DELAY",
            "0",
            "must be within 1 ms..=3600000 ms",
        ),
        (
            "FAULTLINE_EXPORT_BUFFER_CAPACITY",
            "10000001",
            "must be within 0..=10000000",
        ),
        (
            "FAULTLINE_KEEP_ERRORS_MAX_SPANS",
            "100001",
            "must be within 1..=100000",
        ),
        (
            "OTEL_SPAN_LINK_COUNT_LIMIT",
            "65537",
            "must be within 1..=65536",
        ),
        ("FAULTLINE_METRICS_PATH", "metrics", "must start with /"),
        (
            "FAULTLINE_SERVICE_VERSION",
            "1.0\u{7}",
            "must not hold control characters",
        ),
    ] {
        let e = match with_env(&[(var, value)]) {
            Ok(_) => panic!("{var}={value:?} should fail as it is read"),
            Err(e) => e,
        };
        assert_names(&e, var);
        assert!(e.to_string().ends_with(reason), "{e}");
    }
    assert_names(
        &build_err(builder().batch(2048, 512, Duration::ZERO)),
        "batch_scheduled_delay",
    );
    assert_names(
        &build_err(builder().span_count_limits(128, 128, 65_537)),
        "links_per_span",
    );
    assert_names(
        &build_err(builder().metrics_path(Some("metrics"))),
        "metrics_path",
    );
}

#[test]
fn env_and_file_set_the_same_table_settings() {
    let from_env = env_ok(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        ("FAULTLINE_SERVICE_VERSION", "2.1"),
        ("FAULTLINE_ENVIRONMENT", "staging"),
        ("FAULTLINE_METRICS_PATH", "off"),
        ("FAULTLINE_SHUTDOWN_TIMEOUT_MS", "2500"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256"),
        ("OTEL_BSP_SCHEDULE_DELAY", "750"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "3000"),
        ("FAULTLINE_EXPORT_MAX_RETRIES", "9"),
        ("FAULTLINE_EXPORT_BACKOFF_BASE_MS", "20"),
        ("FAULTLINE_EXPORT_BACKOFF_MAX_MS", "900"),
        ("FAULTLINE_EXPORT_BUFFER_CAPACITY", "77"),
        ("FAULTLINE_EXPORT_BUFFER_BYTES", "123456"),
        ("FAULTLINE_KEEP_ERRORS", "false"),
        ("FAULTLINE_KEEP_ERRORS_MAX_TRACES", "33"),
        ("FAULTLINE_KEEP_ERRORS_MAX_SPANS", "44"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1000"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "11"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "12"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "13"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "14"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "15"),
    ]);
    let from_file: TracingConfig = toml::from_str(
        r#"
service_name = "checkout"
service_version = "2.1"
deployment_environment = "staging"
metrics_path = ""
shutdown_timeout_ms = 2500
batch_max_queue_size = 4096
batch_max_export_batch_size = 256
batch_scheduled_delay_ms = 750
export_timeout_ms = 3000
max_export_retries = 9
backoff_base_ms = 20
backoff_max_ms = 900
export_buffer_capacity = 77
export_buffer_bytes = 123456
keep_errors = false
keep_errors_max_traces = 33
keep_errors_max_spans_per_trace = 44
attribute_value_length_limit = 1000
attributes_per_span = 11
events_per_span = 12
links_per_span = 13
attributes_per_event = 14
attributes_per_link = 15
"#,
    )
    .expect("valid file");
    let from_code = build_ok(
        builder()
            .service_name("checkout")
            .service_version("2.1")
            .deployment_environment("staging")
            .metrics_path(None)
            .shutdown_timeout(Duration::from_millis(2500))
            .batch(4096, 256, Duration::from_millis(750))
            .export_timeout(Duration::from_secs(3))
            .max_export_retries(9)
            .backoff(Duration::from_millis(20), Duration::from_millis(900))
            .export_buffer_capacity(77)
            .export_buffer_bytes(123_456)
            .keep_errors(false)
            .keep_errors_caps(33, 44)
            .attribute_value_length_limit(1000)
            .span_count_limits(11, 12, 13)
            .event_link_attribute_limits(14, 15),
    );
    assert_eq!(from_env, from_file);
    assert_eq!(from_env, from_code);
    assert_eq!(from_code.batch().max_export_batch_size(), 256);
    assert_eq!(from_code.limits().attributes_per_link(), 15);
    assert_eq!(from_code.keep_errors().max_traces(), 33);
    assert_eq!(from_code.metrics_path(), None);
    assert_ne!(from_code, TracingConfig::default());
}
