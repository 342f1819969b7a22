//! Exporter settings set in code: endpoints, export headers, TLS, Jaeger, exporter names.

use super::*;

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

type EndpointSetter = fn(TracingConfigBuilder, String) -> TracingConfigBuilder;

const ENDPOINT_SETTERS: &[(&str, EndpointSetter)] = &[
    ("otlp_endpoint", |b, u| b.otlp_endpoint(u)),
    ("otlp_traces_endpoint", |b, u| b.otlp_traces_endpoint(u)),
    ("jaeger_endpoint", |b, u| b.jaeger_endpoint(u)),
];

#[test]
fn endpoint_urls_valid() {
    let cases = [
        ("http://collector:4317", "http://collector:4317/"),
        (
            "https://collector.example.com:4317",
            "https://collector.example.com:4317/",
        ),
        (
            "https://collector.example.com",
            "https://collector.example.com/",
        ),
        (
            "http://10.0.0.5:4318/v1/traces",
            "http://10.0.0.5:4318/v1/traces",
        ),
        ("http://[::1]:4317", "http://[::1]:4317/"),
        ("  http://collector:4317  ", "http://collector:4317/"),
        ("HTTPS://Collector:443/api", "https://collector/api"),
        (
            "https://collector/path?tenant=a",
            "https://collector/path?tenant=a",
        ),
    ];
    for (input, expected) in cases {
        let c = build_ok(builder().otlp_endpoint(input));
        assert_eq!(
            c.otlp_endpoint().map(Url::as_str),
            Some(expected),
            "{input}"
        );
        let c = build_ok(builder().otlp_traces_endpoint(input));
        assert_eq!(c.otlp_traces_endpoint().as_str(), expected, "{input}");
        let c = build_ok(builder().jaeger_endpoint(input));
        assert_eq!(
            c.jaeger_endpoint().map(Url::as_str),
            Some(expected),
            "{input}"
        );
    }
}

#[test]
fn endpoint_urls_invalid() {
    let cases = [
        ("ftp://collector:21", "the scheme must be http or https"),
        ("grpc://collector:4317", "the scheme must be http or https"),
        ("file:///etc/passwd", "the scheme must be http or https"),
        ("localhost:4317", "the scheme must be http or https"),
        ("http://", "not a URL (empty host)"),
        ("https://:4317", "not a URL (empty host)"),
        ("not a url", "not a URL (relative URL without a base)"),
        ("collector", "not a URL (relative URL without a base)"),
        ("", "not a URL (relative URL without a base)"),
        ("http://collector:99999", "not a URL (invalid port number)"),
    ];
    for (setting, set) in ENDPOINT_SETTERS {
        for (input, reason) in cases {
            let e = build_err(set(builder(), input.to_owned()));
            assert_eq!(
                e.to_string(),
                format!("{setting}: invalid value {input:?}: {reason}")
            );
        }
    }
}

#[test]
fn endpoint_credentials_are_rejected_without_being_shown() {
    let cases = [
        (
            "https://user:s3cret@collector:4317",
            "credentials in the URL are not accepted; send them as headers",
        ),
        (
            "https://:s3cret@collector:4317",
            "credentials in the URL are not accepted; send them as headers",
        ),
        (
            "https://s3cret@collector:4317",
            "credentials in the URL are not accepted; send them as headers",
        ),
        (
            "http://user:s3cret@10.0.0.1/v1/traces",
            "credentials in the URL are not accepted; send them as headers",
        ),
        // Other errors on a URL holding credentials must not show them either.
        (
            "ftp://user:s3cret@collector",
            "the scheme must be http or https",
        ),
        ("http://user:s3cret@:4317", "not a URL (empty host)"),
        (
            "http://user:s3cret@collector:99999",
            "not a URL (invalid port number)",
        ),
    ];
    for (setting, set) in ENDPOINT_SETTERS {
        for (input, reason) in cases {
            let e = build_err(set(builder(), input.to_owned()));
            let text = e.to_string();
            assert!(!text.contains("s3cret"), "password leaked: {text}");
            assert_eq!(text, format!("{setting}: invalid value {HIDDEN}: {reason}"));
        }
    }
}

#[test]
fn otlp_traces_endpoint_resolution_in_code() {
    type Case = (
        OtlpProtocol,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let cases: &[Case] = &[
        (OtlpProtocol::Grpc, None, None, "http://localhost:4317/"),
        (
            OtlpProtocol::HttpProtobuf,
            None,
            None,
            "http://localhost:4318/v1/traces",
        ),
        (
            OtlpProtocol::Grpc,
            Some("http://collector:4317"),
            None,
            "http://collector:4317/",
        ),
        (
            OtlpProtocol::Grpc,
            Some("https://collector:4317/"),
            None,
            "https://collector:4317/",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("http://collector:4318"),
            None,
            "http://collector:4318/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("http://collector:4318/"),
            None,
            "http://collector:4318/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("https://gw.example.com/otlp"),
            None,
            "https://gw.example.com/otlp/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("https://gw.example.com/otlp/"),
            None,
            "https://gw.example.com/otlp/v1/traces",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            Some("http://base:4318"),
            Some("http://traces:9999/custom"),
            "http://traces:9999/custom",
        ),
        (
            OtlpProtocol::HttpProtobuf,
            None,
            Some("http://traces:4318/"),
            "http://traces:4318/",
        ),
        (
            OtlpProtocol::Grpc,
            Some("http://base:4317"),
            Some("http://traces:4317"),
            "http://traces:4317/",
        ),
    ];
    for (protocol, base, traces, expected) in cases {
        let mut b = builder().otlp_protocol(*protocol);
        if let Some(base) = base {
            b = b.otlp_endpoint(*base);
        }
        if let Some(traces) = traces {
            b = b.otlp_traces_endpoint(*traces);
        }
        let c = build_ok(b);
        assert_eq!(
            c.otlp_traces_endpoint().as_str(),
            *expected,
            "{protocol:?} {base:?} {traces:?}"
        );
        // The base endpoint is kept as configured.
        assert_eq!(
            c.otlp_endpoint().map(Url::as_str),
            base.map(|b| Url::parse(b).unwrap())
                .as_ref()
                .map(Url::as_str)
        );
    }
}

// ---------------------------------------------------------------------------
// Export headers
// ---------------------------------------------------------------------------

#[test]
fn export_headers_valid() {
    let c = build_ok(
        builder()
            .otlp_header("Authorization", "Bearer abc")
            .otlp_header("x-tenant", "t1")
            .otlp_header("AUTHORIZATION", "Bearer xyz")
            .otlp_header("x-empty", "")
            .otlp_header("x-tab", "a\tb"),
    );
    let headers = headers_of(&c);
    assert_eq!(headers.len(), 4);
    assert_eq!(headers["authorization"], "Bearer xyz");
    assert_eq!(headers["x-tenant"], "t1");
    assert_eq!(headers["x-empty"], "");
    assert_eq!(headers["x-tab"], "a\tb");
}

#[test]
fn export_header_bad_name() {
    for name in ["bad header", "", "x:y", "é", "a\nb", "(x)"] {
        let e = build_err(builder().otlp_header(name, "v"));
        assert_names(&e, "otlp_headers");
        assert!(e.to_string().ends_with(": not a valid header name"), "{e}");
    }
    assert_eq!(
        build_err(builder().otlp_header("bad header", "s3cret")).to_string(),
        r#"otlp_headers: invalid value "bad header": not a valid header name"#
    );
}

#[test]
fn export_header_bad_value_is_not_shown() {
    for value in [
        "Bearer s3cret\n",
        "Bearer\rs3cret",
        "s3cret\u{0}",
        "s3cret\u{1b}",
        "s3cret\u{7f}",
    ] {
        let e = build_err(builder().otlp_header("Authorization", value));
        let text = e.to_string();
        assert!(!text.contains("s3cret"), "value leaked: {text}");
        assert_eq!(
            text,
            format!(
                "otlp_headers: invalid value {HIDDEN}: the value of header `authorization` is not a valid header value"
            )
        );
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[test]
fn tls_valid_paths() {
    let ca = TempPath::file("ca", ".pem", PEM);
    let cert = TempPath::file("cert", ".pem", PEM);
    let key = TempPath::file("key", ".pem", PEM);
    let c = build_ok(
        builder()
            .otlp_ca_file(ca.path())
            .otlp_client_identity(cert.path(), key.path()),
    );
    let tls = c.otlp_tls();
    assert!(!tls.is_empty());
    assert_eq!(tls.ca_file(), Some(ca.path()));
    assert_eq!(tls.client_cert(), Some(cert.path()));
    assert_eq!(tls.client_key(), Some(key.path()));

    let c = build_ok(builder().otlp_ca_file(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), None);
    assert!(!c.otlp_tls().is_empty());
}

#[test]
fn tls_missing_file() {
    let missing = TempPath::missing("nope");
    let e = build_err(builder().otlp_ca_file(missing.path()));
    assert_names(&e, "otlp_tls.ca_file");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "otlp_tls.ca_file: invalid value {:?}: cannot be read (",
            missing.str()
        )),
        "{text}"
    );

    let present = TempPath::file("present", ".pem", PEM);
    let e = build_err(builder().otlp_client_identity(missing.path(), present.path()));
    assert_names(&e, "otlp_tls.client_cert");
    let e = build_err(builder().otlp_client_identity(present.path(), missing.path()));
    assert_names(&e, "otlp_tls.client_key");
}

#[test]
fn tls_directory_is_not_a_file() {
    let dir = TempPath::dir("tlsdir");
    let file = TempPath::file("f", ".pem", PEM);
    let e = build_err(builder().otlp_ca_file(dir.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.ca_file: invalid value {:?}: not a file",
            dir.str()
        )
    );
    let e = build_err(builder().otlp_client_identity(dir.path(), file.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.client_cert: invalid value {:?}: not a file",
            dir.str()
        )
    );
    let e = build_err(builder().otlp_client_identity(file.path(), dir.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.client_key: invalid value {:?}: not a file",
            dir.str()
        )
    );
}

#[test]
fn tls_certificate_and_key_go_together() {
    let cert = TempPath::file("cert", ".pem", PEM);
    // The builder sets both at once; a file (or the environment) can set one.
    let cert_only = format!(r#"{{"otlp_client_cert": {:?}}}"#, cert.str());
    let e = serde_json::from_str::<TracingConfig>(&cert_only)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"otlp_tls: invalid value "client_cert only": a client certificate and its key go together"#),
        "{e}"
    );
    let key_only = format!(r#"{{"otlp_client_key": {:?}}}"#, cert.str());
    let e = serde_json::from_str::<TracingConfig>(&key_only)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"otlp_tls: invalid value "client_key only": a client certificate and its key go together"#),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// Jaeger agent
// ---------------------------------------------------------------------------

#[test]
fn jaeger_host_valid() {
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
        let c = build_ok(builder().jaeger_agent(host, 6832));
        assert_eq!(c.jaeger_agent_host(), host);
        assert_eq!(c.jaeger_agent_port(), 6832);
    }
}

#[test]
fn jaeger_host_invalid() {
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
        let e = build_err(builder().jaeger_agent(host, 6831));
        assert_eq!(
            e.to_string(),
            format!("jaeger_agent_host: invalid value {host:?}: not a host name or IP address"),
        );
    }
    let e = build_err(builder().jaeger_agent(too_long.as_str(), 6831));
    assert!(
        e.to_string()
            .ends_with("... (263 bytes): not a host name or IP address"),
        "{e}"
    );
    assert_eq!(
        build_err(builder().jaeger_agent("", 6831)).to_string(),
        r#"jaeger_agent_host: invalid value "": must not be empty"#
    );
}

#[test]
fn jaeger_port() {
    assert_eq!(
        build_ok(builder().jaeger_agent("localhost", 1)).jaeger_agent_port(),
        1
    );
    assert_eq!(
        build_ok(builder().jaeger_agent("localhost", 65535)).jaeger_agent_port(),
        65535
    );
    assert_eq!(
        build_err(builder().jaeger_agent("localhost", 0)).to_string(),
        r#"jaeger_agent_port: invalid value "0": a port must be within 1..=65535"#
    );
    // Beyond u16 only reaches the builder through a file or serde.
    for port in [65536_u32, 70000, u32::MAX] {
        let e =
            serde_json::from_str::<TracingConfig>(&format!(r#"{{"jaeger_agent_port": {port}}}"#))
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with(&format!(
                r#"jaeger_agent_port: invalid value "{port}": a port must be within 1..=65535"#
            )),
            "{e}"
        );
    }
}

#[test]
fn exporters_in_code_keep_their_order_without_duplicates() {
    let c = build_ok(builder().exporters([
        ExporterKind::CONSOLE,
        ExporterKind::OTLP,
        ExporterKind::named("mine"),
        ExporterKind::CONSOLE,
    ]));
    assert_eq!(
        c.exporters(),
        &[
            ExporterKind::CONSOLE,
            ExporterKind::OTLP,
            ExporterKind::named("mine")
        ]
    );
    assert!(build_ok(builder().exporters([])).exporters().is_empty());
}

#[test]
fn exporter_names_must_be_well_formed() {
    for bad in [
        "",
        "Mine",
        "my exporter",
        "9lives",
        "a/b",
        "none",
        &"x".repeat(65),
    ] {
        let e = build_err(builder().exporters([ExporterKind::named(bad.to_owned())]));
        assert_one_line(&e);
        assert!(e.to_string().starts_with("exporters: invalid value"), "{e}");
    }
    for good in ["mine", "audit-log", "my_exporter.v2", &"x".repeat(64)] {
        build_ok(builder().exporters([ExporterKind::named(good.to_owned())]));
    }
}
