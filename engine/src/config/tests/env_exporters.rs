//! The exporters' environment variables (OTLP and Jaeger).

use super::*;

#[test]
fn env_otlp_endpoint_resolution() {
    type Case = (&'static [(&'static str, &'static str)], &'static str);
    let cases: &[Case] = &[
        (&[], "http://localhost:4317/"),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "http://localhost:4317/",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
            "http://localhost:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")],
            "http://localhost:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")],
            "http://collector:4317/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317/"),
            ],
            "https://collector:4317/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ],
            "http://collector:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ],
            "http://collector:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://gw.example.com/otlp/",
                ),
            ],
            "https://gw.example.com/otlp/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:4318/custom/path",
                ),
            ],
            "http://traces:4318/custom/path",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318"),
            ],
            "http://traces:4318/",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            ],
            "http://traces:4317/",
        ),
        // The traces-specific protocol wins over the general one.
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ],
            "http://collector:4318/v1/traces",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ],
            "http://collector:4317/",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "  http://collector:4317  ")],
            "http://collector:4317/",
        ),
    ];
    for (vars, expected) in cases {
        let c = env_ok(vars);
        assert_eq!(c.otlp_traces_endpoint().as_str(), *expected, "{vars:?}");
    }
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")]);
    assert_eq!(c.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
    assert_eq!(
        c.otlp_endpoint().map(Url::as_str),
        Some("http://collector:4317/")
    );
}

#[test]
fn env_protocol_errors() {
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        assert_eq!(
            env_err(&[(var, "http/json")]).to_string(),
            format!(
                r#"{var}: invalid value "http/json": http/json is not supported; use grpc or http/protobuf"#
            )
        );
        assert_eq!(
            env_err(&[(var, "thrift")]).to_string(),
            format!(r#"{var}: invalid value "thrift": must be grpc or http/protobuf"#)
        );
    }
}

#[test]
fn env_endpoint_errors() {
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_JAEGER_ENDPOINT",
    ] {
        assert_eq!(
            env_err(&[(var, "ftp://collector")]).to_string(),
            format!(r#"{var}: invalid value "ftp://collector": the scheme must be http or https"#)
        );
        assert_eq!(
            env_err(&[(var, "collector:4317")]).to_string(),
            format!(r#"{var}: invalid value "collector:4317": the scheme must be http or https"#)
        );
        assert_names(&env_err(&[(var, "http://")]), var);
        for with_password in [
            "https://user:s3cret@collector:4317",
            "ftp://user:s3cret@collector",
        ] {
            let e = env_err(&[(var, with_password)]);
            assert_names(&e, var);
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
        }
    }
}

#[test]
fn env_headers_merge_and_decode() {
    let c = env_ok(&[
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer%20general,x-tenant=a, x-scope = b%2Cc ",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "authorization=Bearer%20traces,x-extra=token==",
        ),
    ]);
    let headers = headers_of(&c);
    assert_eq!(headers.len(), 4, "{headers:?}");
    assert_eq!(headers["authorization"], "Bearer traces");
    assert_eq!(headers["x-tenant"], "a");
    assert_eq!(headers["x-scope"], "b,c");
    assert_eq!(headers["x-extra"], "token==");

    // Only the general variable.
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1")]);
    assert_eq!(headers_of(&c)["api-key"], "k1");
    // Only the traces variable.
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=k2")]);
    assert_eq!(headers_of(&c)["api-key"], "k2");
}

#[test]
fn env_header_errors_hide_the_value() {
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        let cases = [
            (
                "authorizationBearer s3cret",
                format!("{var}: invalid value {HIDDEN}: entry 1 is not key=value"),
            ),
            (
                "x=1,=Bearer s3cret",
                format!("{var}: invalid value {HIDDEN}: entry 2 has an empty key"),
            ),
            (
                "authorization=Bearer%zzs3cret",
                format!("{var}: invalid value {HIDDEN}: entry 1 has a bad percent-encoding"),
            ),
            (
                "authorization=Bearer%0As3cret",
                format!(
                    "{var}: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
                ),
            ),
            (
                "Authorization=Bearer%7Fs3cret",
                format!(
                    "{var}: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
                ),
            ),
            // A bad name is shown (it is not the secret); the value is not.
            (
                "bad name=s3cret",
                format!(r#"{var}: invalid value "bad name": not a valid header name"#),
            ),
        ];
        for (value, message) in cases {
            let e = env_err(&[(var, value)]);
            assert_eq!(e.to_string(), message);
            assert!(!format!("{e:?}").contains("s3cret"));
        }
    }
}

#[test]
fn env_compression() {
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]).otlp_compression(),
        Compression::Gzip
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "none")]).otlp_compression(),
        Compression::None
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")]).otlp_compression(),
        Compression::Gzip
    );
    // The traces-specific variable wins.
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
    ]);
    assert_eq!(c.otlp_compression(), Compression::None);
    for var in [
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    ] {
        assert_eq!(
            env_err(&[(var, "zstd")]).to_string(),
            format!(r#"{var}: invalid value "zstd": must be gzip or none"#)
        );
    }
}

#[test]
fn env_timeouts() {
    let ms = Duration::from_millis;
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")])
            .export_retry()
            .timeout(),
        ms(2500)
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", " 3000 ")])
            .export_retry()
            .timeout(),
        ms(3000)
    );
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3000"),
    ]);
    assert_eq!(c.export_retry().timeout(), ms(3000));
    assert_eq!(
        env_ok(&[("OTEL_BSP_EXPORT_TIMEOUT", "7000")])
            .export_retry()
            .timeout(),
        ms(7000)
    );
    for var in [
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
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
    // A well-formed value beyond a limit fails at build time, naming the
    // variable it came from.
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]),
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    );
}

#[test]
fn env_certificates() {
    let ca = TempPath::file("env-ca", ".pem", PEM);
    let ca2 = TempPath::file("env-ca2", ".pem", PEM);
    let cert = TempPath::file("env-cert", ".pem", PEM);
    let key = TempPath::file("env-key", ".pem", PEM);

    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.str()),
    ]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), Some(cert.path()));
    assert_eq!(c.otlp_tls().client_key(), Some(key.path()));

    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", ca.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.str()),
    ]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), Some(cert.path()));
    assert_eq!(c.otlp_tls().client_key(), Some(key.path()));

    // The traces-specific variable wins.
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.str()),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", ca2.str()),
    ]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca2.path()));

    // Surrounding blanks are trimmed.
    let padded = format!("  {}  ", ca.str());
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", padded.as_str())]);
    assert_eq!(c.otlp_tls().ca_file(), Some(ca.path()));

    // A certificate without its key.
    let e = env_err(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str())]);
    assert_eq!(
        e.to_string(),
        r#"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: invalid value "client_cert only": a client certificate and its key go together"#
    );
    let e = env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", key.str())]);
    assert_names(&e, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY");
}

#[test]
fn env_certificate_errors() {
    let missing = TempPath::missing("env-missing");
    let dir = TempPath::dir("env-dir");
    for var in [
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    ] {
        for path in [missing.str(), dir.str()] {
            assert_eq!(
                env_err(&[(var, path)]).to_string(),
                format!("{var}: invalid value {path:?}: no such file")
            );
        }
    }
}

#[test]
fn env_jaeger() {
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
    assert_eq!(c.jaeger_agent_host(), "jaeger-agent.observability");
    assert_eq!(c.jaeger_agent_port(), 6832);
    assert_eq!(
        c.jaeger_endpoint().map(Url::as_str),
        Some("http://jaeger:14268/api/traces")
    );

    for host in ["10.1.2.3", "[::1]", " jaeger "] {
        assert_eq!(
            env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_HOST", host)]).jaeger_agent_host(),
            host.trim()
        );
    }
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", " 1 ")]).jaeger_agent_port(),
        1
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_JAEGER_AGENT_PORT", "65535")]).jaeger_agent_port(),
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
fn env_tls_files_are_checked_and_named_by_their_variable() {
    let text = TempPath::file("not-pem", ".pem", "just a host name\n");
    let cert = TempPath::file("cert-only", ".pem", PEM);
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", text.str())]),
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    );
    let e = env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", text.str())]).to_string();
    assert!(
        e.ends_with("holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        "{e}"
    );
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str())]),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    );
    assert_names(
        &env_err(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", cert.str())]),
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    );
    let e = env_err(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", text.str()),
    ]);
    assert_names(&e, "OTEL_EXPORTER_OTLP_CLIENT_KEY");
    assert!(
        e.to_string()
            .ends_with("holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)"),
        "{e}"
    );
    env_ok(&[
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", cert.str()),
    ]);
}

#[test]
fn tls_files_without_pem_blocks_are_refused() {
    let text = TempPath::file("plain", ".pem", "127.0.0.1 localhost\n");
    let key_only = TempPath::file(
        "key-only",
        ".pem",
        "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
    );
    let e = build_err(builder().otlp_ca_file(text.path()));
    assert_names(&e, "otlp_tls.ca_file");
    let e = build_err(builder().otlp_client_identity(key_only.path(), key_only.path()));
    assert_names(&e, "otlp_tls.client_cert");
    let both = TempPath::file("both", ".pem", PEM);
    let e = build_err(builder().otlp_client_identity(both.path(), text.path()));
    assert_names(&e, "otlp_tls.client_key");
    build_ok(builder().otlp_client_identity(both.path(), key_only.path()));
}
