//! The plugin's settings: every rule, the environment (through
//! `with_env_from`, never the process environment), and how each signal's
//! values are resolved.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use faultline_engine::config::{ConfigError, TlsConfig};
use url::Url;

use super::*;

/// A file or directory under the system temp directory, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn at(tag: &str, ext: &str) -> TempPath {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("faultline-otlp-test-{}-{n}-{tag}{ext}", std::process::id());
        TempPath(std::env::temp_dir().join(name))
    }
    fn file(tag: &str, ext: &str, contents: &str) -> TempPath {
        let t = Self::at(tag, ext);
        std::fs::write(&t.0, contents).expect("write temp file");
        t
    }
    fn dir(tag: &str) -> TempPath {
        let t = Self::at(tag, "");
        std::fs::create_dir(&t.0).expect("create temp dir");
        t
    }
    /// A path that does not exist (nothing is created).
    fn missing(tag: &str) -> TempPath {
        Self::at(tag, ".pem")
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
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A stand-in PEM file: a certificate block and a key block.
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n\
-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n";

const HIDDEN: &str = "(hidden: it may hold a secret)";

/// Settings checked and resolved: the traces' (read through the getters
/// below) and the logs'.
#[derive(Debug)]
struct Built {
    general: Option<Url>,
    traces: SignalSettings,
    logs: SignalSettings,
}

impl Built {
    fn otlp_traces_endpoint(&self) -> &Url {
        self.traces.endpoint()
    }
    fn otlp_endpoint(&self) -> Option<&Url> {
        self.general.as_ref()
    }
    fn otlp_protocol(&self) -> OtlpProtocol {
        self.traces.protocol()
    }
    fn otlp_compression(&self) -> Compression {
        self.traces.compression()
    }
    fn otlp_tls(&self) -> &TlsConfig {
        self.traces.tls()
    }
    fn timeout(&self) -> Option<Duration> {
        self.traces.timeout()
    }
}

fn built(config: OtlpConfig) -> Result<Built, ConfigError> {
    config.validate()?;
    Ok(Built {
        general: config
            .general
            .endpoint
            .as_deref()
            .map(|u| Url::parse(u.trim()).expect("checked")),
        traces: config.resolve(Signal::Traces)?,
        logs: config.resolve(Signal::Logs)?,
    })
}

fn builder() -> OtlpConfig {
    OtlpConfig::new()
}

fn build_ok(config: OtlpConfig) -> Built {
    built(config).unwrap_or_else(|e| panic!("should be accepted, got: {e}"))
}

fn build_err(config: OtlpConfig) -> ConfigError {
    match built(config) {
        Ok(c) => panic!("should be rejected, got: {c:?}"),
        Err(e) => {
            assert_one_line(&e);
            e
        }
    }
}

fn from_env(pairs: &[(&str, &str)]) -> Result<Built, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    built(OtlpConfig::new().with_env_from(|name| map.get(name).cloned())?)
}

fn env_ok(pairs: &[(&str, &str)]) -> Built {
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

fn assert_one_line(e: &ConfigError) {
    let text = e.to_string();
    assert!(
        !text.is_empty() && !text.contains('\n') && !text.contains('\r'),
        "{text:?}"
    );
}

/// Asserts an error about `setting` whose message starts with the setting.
fn assert_names(e: &ConfigError, setting: &str) {
    assert_eq!(e.setting(), Some(setting), "wrong setting in: {e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{setting}: invalid value ")),
        "message: {e}"
    );
    assert_one_line(e);
}

fn headers_of(c: &Built) -> HashMap<String, String> {
    c.traces.headers().iter().cloned().collect()
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

type EndpointSetter = fn(OtlpConfig, String) -> OtlpConfig;

const ENDPOINT_SETTERS: &[(&str, EndpointSetter)] = &[
    ("otlp_endpoint", |b, u| b.endpoint(u)),
    ("otlp_traces_endpoint", |b, u| b.traces_endpoint(u)),
    ("otlp_logs_endpoint", |b, u| b.logs_endpoint(u)),
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
        let c = build_ok(builder().endpoint(input));
        assert_eq!(
            c.otlp_endpoint().map(Url::as_str),
            Some(expected),
            "{input}"
        );
        let c = build_ok(builder().traces_endpoint(input));
        assert_eq!(c.otlp_traces_endpoint().as_str(), expected, "{input}");
        let c = build_ok(builder().logs_endpoint(input));
        assert_eq!(c.logs.endpoint().as_str(), expected, "{input}");
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
        let mut b = builder().protocol(*protocol);
        if let Some(base) = base {
            b = b.endpoint(*base);
        }
        if let Some(traces) = traces {
            b = b.traces_endpoint(*traces);
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
            .header("Authorization", "Bearer abc")
            .header("x-tenant", "t1")
            .header("AUTHORIZATION", "Bearer xyz")
            .header("x-empty", "")
            .header("x-tab", "a\tb"),
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
        let e = build_err(builder().header(name, "v"));
        assert_names(&e, "otlp_headers");
        assert!(e.to_string().ends_with(": not a valid header name"), "{e}");
    }
    assert_eq!(
        build_err(builder().header("bad header", "s3cret")).to_string(),
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
        let e = build_err(builder().header("Authorization", value));
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
            .ca_file(ca.path())
            .client_identity(cert.path(), key.path()),
    );
    let tls = c.otlp_tls();
    assert!(!tls.is_empty());
    assert_eq!(tls.ca_file(), Some(ca.path()));
    assert_eq!(tls.client_cert(), Some(cert.path()));
    assert_eq!(tls.client_key(), Some(key.path()));

    let c = build_ok(builder().ca_file(ca.path()));
    assert_eq!(c.otlp_tls().client_cert(), None);
    assert!(!c.otlp_tls().is_empty());
}

#[test]
fn tls_missing_file() {
    let missing = TempPath::missing("nope");
    let e = build_err(builder().ca_file(missing.path()));
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
    let e = build_err(builder().client_identity(missing.path(), present.path()));
    assert_names(&e, "otlp_tls.client_cert");
    let e = build_err(builder().client_identity(present.path(), missing.path()));
    assert_names(&e, "otlp_tls.client_key");
}

#[test]
fn tls_directory_is_not_a_file() {
    let dir = TempPath::dir("tlsdir");
    let file = TempPath::file("f", ".pem", PEM);
    let e = build_err(builder().ca_file(dir.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.ca_file: invalid value {:?}: not a file",
            dir.str()
        )
    );
    let e = build_err(builder().client_identity(dir.path(), file.path()));
    assert_eq!(
        e.to_string(),
        format!(
            "otlp_tls.client_cert: invalid value {:?}: not a file",
            dir.str()
        )
    );
    let e = build_err(builder().client_identity(file.path(), dir.path()));
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
    // In code both come at once; from the environment one may come alone.
    let e = env_err(&[("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", cert.str())]);
    assert_eq!(
        e.to_string(),
        r#"OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE: invalid value "client_cert only": a client certificate and its key go together"#
    );
    let e = env_err(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", cert.str())]);
    assert_names(&e, "OTEL_EXPORTER_OTLP_CLIENT_KEY");
    // Each signal's certificate with the general key: a pair for each.
    let e = env_err(&[
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", cert.str()),
    ]);
    assert_names(&e, "OTEL_EXPORTER_OTLP_CLIENT_KEY");
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", cert.str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", cert.str()),
    ]);
    assert_eq!(c.otlp_tls().client_cert(), Some(cert.path()));
    assert_eq!(c.otlp_tls().client_key(), Some(cert.path()));
}

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
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
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
        env_ok(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]).timeout(),
        Some(ms(2500))
    );
    assert_eq!(
        env_ok(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", " 3000 ")]).timeout(),
        Some(ms(3000))
    );
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3000"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "4000"),
    ]);
    assert_eq!(c.timeout(), Some(ms(3000)));
    assert_eq!(c.logs.timeout(), Some(ms(4000)));
    // Unset: the engine's export timeout applies.
    assert_eq!(env_ok(&[]).timeout(), None);
    for var in [
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    ] {
        for bad in ["10s", "1.5", "-1", "abc", "99999999999999999999"] {
            assert_eq!(
                env_err(&[(var, bad)]).to_string(),
                format!("{var}: invalid value {bad:?}: must be a whole number of milliseconds")
            );
        }
        // A well-formed value beyond a limit, naming the variable.
        assert_names(&env_err(&[(var, "0")]), var);
        assert_names(&env_err(&[(var, "600001")]), var);
    }
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
    let e = build_err(builder().ca_file(text.path()));
    assert_names(&e, "otlp_tls.ca_file");
    let e = build_err(builder().client_identity(key_only.path(), key_only.path()));
    assert_names(&e, "otlp_tls.client_cert");
    let both = TempPath::file("both", ".pem", PEM);
    let e = build_err(builder().client_identity(both.path(), text.path()));
    assert_names(&e, "otlp_tls.client_key");
    build_ok(builder().client_identity(both.path(), key_only.path()));
}

// ---------------------------------------------------------------------------
// The logs signal and the variables' list
// ---------------------------------------------------------------------------

#[test]
fn logs_take_their_own_values_over_the_general_ones() {
    let ca = TempPath::file("logs-ca", ".pem", PEM);
    let c = env_ok(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "b=3"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", ca.str()),
    ]);
    assert_eq!(
        c.logs.endpoint().as_str(),
        "http://collector:4318/base/v1/logs"
    );
    assert_eq!(
        c.otlp_traces_endpoint().as_str(),
        "http://collector:4318/base/v1/traces"
    );
    let headers: Vec<String> = c
        .logs
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(headers, ["a=1", "b=3"]);
    assert_eq!(
        headers_of(&c)["b"],
        "2",
        "the traces keep the general header"
    );
    assert_eq!(c.logs.compression(), Compression::Gzip);
    assert_eq!(c.otlp_compression(), Compression::None);
    assert_eq!(c.logs.tls().ca_file(), Some(ca.path()));
    assert!(c.otlp_tls().is_empty(), "the logs' CA is theirs only");

    let c = env_ok(&[("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9999/x")]);
    assert_eq!(c.logs.endpoint().as_str(), "http://logs:9999/x");
    assert_eq!(c.logs.protocol(), OtlpProtocol::Grpc);
    assert_eq!(
        env_ok(&[]).logs.endpoint().as_str(),
        "http://localhost:4317/"
    );
    let c = env_ok(&[("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")]);
    assert_eq!(c.logs.endpoint().as_str(), "http://localhost:4318/v1/logs");
    assert_eq!(
        c.otlp_protocol(),
        OtlpProtocol::Grpc,
        "the traces keep gRPC"
    );
}

#[test]
fn env_variables_list_matches_what_is_read() {
    let asked = RefCell::new(BTreeSet::new());
    OtlpConfig::new()
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
    let missing = TempPath::missing("every-var");
    for signal in ["", "TRACES_", "LOGS_"] {
        for (name, value) in [
            ("ENDPOINT", "ftp://x"),
            ("PROTOCOL", "udp"),
            ("HEADERS", "novalue"),
            ("COMPRESSION", "zstd"),
            ("TIMEOUT", "soon"),
            ("CERTIFICATE", missing.str()),
            ("CLIENT_CERTIFICATE", missing.str()),
            ("CLIENT_KEY", missing.str()),
        ] {
            let var = format!("OTEL_EXPORTER_OTLP_{signal}{name}");
            assert!(ENV_VARIABLES.contains(&var.as_str()), "{var}");
            assert_names(&env_err(&[(&var, value)]), &var);
        }
    }
}
