//! The validation rules, shared by the builder, the environment and files.
//! `setting` is what the error names: a field name or an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use regex::Regex;
use url::Url;

use super::{ConfigError, TlsConfig};

/// Longest accepted service name, in bytes.
const MAX_SERVICE_NAME: usize = 255;

pub(crate) fn service_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::invalid(setting, name, "must not be empty"));
    }
    if name.len() > MAX_SERVICE_NAME {
        return Err(ConfigError::invalid(
            setting,
            name,
            format!("longer than {MAX_SERVICE_NAME} bytes"),
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::invalid(
            setting,
            name,
            "only ASCII letters, digits and hyphens are allowed",
        ));
    }
    Ok(())
}

/// Longest accepted exporter (or propagator) name, in bytes.
const MAX_EXPORTER_NAME: usize = 64;

pub(crate) fn exporter_name(setting: &str, name: &str) -> Result<(), ConfigError> {
    plugin_name(setting, name, "exporter")
}

/// The name rule of registered plugins (exporters, propagators): `what`
/// names the kind in the error.
pub(crate) fn plugin_name(setting: &str, name: &str, what: &str) -> Result<(), ConfigError> {
    let a = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let well_formed = name.len() <= MAX_EXPORTER_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !well_formed {
        return Err(ConfigError::invalid(
            setting,
            name,
            format!(
                "not {a} {what} name (1 to {MAX_EXPORTER_NAME} lowercase ASCII letters, digits, \
                 `-`, `_` or `.`, starting with a letter)"
            ),
        ));
    }
    if name == "none" {
        return Err(ConfigError::invalid(
            setting,
            name,
            format!("`none` is not {a} {what}: an empty list means no {what}"),
        ));
    }
    Ok(())
}

pub(crate) fn non_empty_text(setting: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::invalid(setting, value, "must not be empty"));
    }
    if value.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            setting,
            value,
            "must not hold control characters",
        ));
    }
    Ok(())
}

pub(crate) fn resource_attribute(setting: &str, key: &str, value: &str) -> Result<(), ConfigError> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            setting,
            key,
            "an attribute key must be printable ASCII without spaces",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            setting,
            value,
            format!("the value of `{key}` must not hold control characters"),
        ));
    }
    Ok(())
}

pub(crate) fn sample_rate(setting: &str, rate: f64) -> Result<(), ConfigError> {
    if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
        return Err(ConfigError::invalid(
            setting,
            &rate.to_string(),
            "must be a number within 0.0..=1.0",
        ));
    }
    Ok(())
}

pub(crate) fn parse_sample_rate(setting: &str, text: &str) -> Result<f64, ConfigError> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid(setting, text, "must be a number within 0.0..=1.0"))?;
    if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
        return Err(ConfigError::invalid(
            setting,
            text,
            "must be a number within 0.0..=1.0",
        ));
    }
    Ok(rate)
}

pub(crate) fn endpoint_url(setting: &str, text: &str) -> Result<Url, ConfigError> {
    // A value with `@` may carry credentials: never repeat it, whatever the error.
    let fail = |reason: String| {
        if text.contains('@') {
            ConfigError::invalid_secret(setting, reason)
        } else {
            ConfigError::invalid(setting, text, reason)
        }
    };
    let url = Url::parse(text.trim()).map_err(|e| fail(format!("not a URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(fail("the scheme must be http or https".to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail("the URL has no host".to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in logs; they belong in headers.
        return Err(ConfigError::invalid_secret(
            setting,
            "credentials in the URL are not accepted; send them as headers",
        ));
    }
    Ok(url)
}

pub(crate) fn export_header(
    setting: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, String), ConfigError> {
    let header = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| ConfigError::invalid(setting, name, "not a valid header name"))?;
    if HeaderValue::from_str(value).is_err() {
        return Err(ConfigError::invalid_secret(
            setting,
            format!("the value of header `{header}` is not a valid header value"),
        ));
    }
    Ok((header, value.to_owned()))
}

/// What is wrong with the PEM file `path` holding a `what` (`ca_file`,
/// `client_cert`, `client_key`), if anything: it must be readable, of a
/// sensible size, and hold a certificate (or a private key) block, so
/// that a wrong file stops the service at start instead of failing every
/// export later. The blocks themselves are parsed by the TLS stack when
/// the exporter connects.
fn pem_problem(what: &str, path: &std::path::Path, size: u64) -> Option<String> {
    const MAX_PEM_BYTES: u64 = 4 << 20;
    if size > MAX_PEM_BYTES {
        return Some(format!(
            "larger than {} MiB: not a PEM file",
            MAX_PEM_BYTES >> 20
        ));
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return Some(format!("cannot be read ({e})")),
    };
    let has_block = |label_ends: &str| {
        text.lines().any(|line| {
            let line = line.trim();
            line.starts_with("-----BEGIN ") && line.ends_with(label_ends)
        })
    };
    if what == "client_key" {
        (!has_block("PRIVATE KEY-----"))
            .then(|| "holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)".to_owned())
    } else {
        (!has_block("CERTIFICATE-----"))
            .then(|| "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned())
    }
}

/// One TLS file (`what`: `ca_file`, `client_cert` or `client_key`): a
/// readable PEM file of the right kind, its error naming `setting`.
pub(crate) fn tls_file(
    setting: &str,
    path: &std::path::Path,
    what: &str,
) -> Result<(), ConfigError> {
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => match pem_problem(what, path, meta.len()) {
            Some(problem) => Err(ConfigError::invalid(setting, &shown, problem)),
            None => Ok(()),
        },
        Ok(_) => Err(ConfigError::invalid(setting, &shown, "not a file")),
        Err(e) => Err(ConfigError::invalid(
            setting,
            &shown,
            format!("cannot be read ({e})"),
        )),
    }
}

pub(crate) fn tls(
    setting: &str,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
) -> Result<TlsConfig, ConfigError> {
    for (what, path) in [
        ("ca_file", &ca_file),
        ("client_cert", &client_cert),
        ("client_key", &client_key),
    ] {
        if let Some(path) = path {
            tls_file(&format!("{setting}.{what}"), path, what)?;
        }
    }
    if client_cert.is_some() != client_key.is_some() {
        return Err(ConfigError::invalid(
            setting,
            if client_cert.is_some() {
                "client_cert only"
            } else {
                "client_key only"
            },
            "a client certificate and its key go together",
        ));
    }
    Ok(TlsConfig {
        ca_file,
        client_cert,
        client_key,
    })
}

pub(crate) fn host(setting: &str, host: &str) -> Result<(), ConfigError> {
    if host.is_empty() {
        return Err(ConfigError::invalid(setting, host, "must not be empty"));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > 253 || !host.trim_end_matches('.').split('.').all(valid_label) {
        return Err(ConfigError::invalid(
            setting,
            host,
            "not a host name or IP address",
        ));
    }
    Ok(())
}

pub(crate) fn port(setting: &str, port: u32) -> Result<u16, ConfigError> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ConfigError::invalid(
            setting,
            &port.to_string(),
            "a port must be within 1..=65535",
        )),
    }
}

pub(crate) fn parse_port(setting: &str, text: &str) -> Result<u16, ConfigError> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid(setting, text, "a port must be within 1..=65535"))?;
    port(setting, n)
        .map_err(|_| ConfigError::invalid(setting, text, "a port must be within 1..=65535"))
}

/// A custom pattern's replacement: a masked text keeps its lines, so a line
/// break (or another control character) in it, which would split a log
/// line in two or forge one, is refused.
pub(crate) fn pii_replacement(
    setting: &str,
    name: &str,
    replacement: &str,
) -> Result<(), ConfigError> {
    if replacement.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            format!("{setting}.{name}"),
            replacement,
            "the replacement must not hold a line break or another control character",
        ));
    }
    Ok(())
}

pub(crate) fn pii_pattern(setting: &str, name: &str, regex: &str) -> Result<Regex, ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::invalid(
            setting,
            name,
            "a pattern name must be ASCII letters, digits, `_` or `-`",
        ));
    }
    if regex.is_empty() {
        return Err(ConfigError::invalid(
            format!("{setting}.{name}"),
            regex,
            "the expression is empty",
        ));
    }
    let compiled = regex::RegexBuilder::new(regex)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let first_line = e.to_string().lines().last().unwrap_or("").trim().to_owned();
            ConfigError::invalid(
                format!("{setting}.{name}"),
                regex,
                format!("the expression does not compile ({first_line})"),
            )
        })?;
    if compiled.is_match("") {
        return Err(ConfigError::invalid(
            format!("{setting}.{name}"),
            regex,
            "the expression matches the empty string",
        ));
    }
    Ok(compiled)
}

pub(crate) fn secret_key(setting: &str, key: &str) -> Result<String, ConfigError> {
    let key = key.trim();
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            setting,
            key,
            "a key must be printable ASCII without spaces",
        ));
    }
    Ok(key.to_ascii_lowercase())
}

pub(crate) fn header_names(
    setting: &str,
    names: &[String],
) -> Result<Vec<HeaderName>, ConfigError> {
    let mut out: Vec<HeaderName> = Vec::with_capacity(names.len());
    for name in names {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError::invalid(setting, name, "not a valid header name"))?;
        if !out.contains(&header) {
            out.push(header);
        }
    }
    Ok(out)
}

pub(crate) fn at_most(setting: &str, value: u64, max: u64) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::invalid(
            setting,
            &value.to_string(),
            format!("must be at most {max}"),
        ));
    }
    Ok(())
}

pub(crate) fn count_within(
    setting: &str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            setting,
            &value.to_string(),
            format!("must be within {min}..={max}"),
        ));
    }
    Ok(())
}

pub(crate) fn duration_within(
    setting: &str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            setting,
            &format!("{} ms", value.as_millis()),
            format!(
                "must be within {} ms..={} ms",
                min.as_millis(),
                max.as_millis()
            ),
        ));
    }
    Ok(())
}

/// Longest accepted route path, in bytes.
const MAX_ROUTE_PATH: usize = 1024;

pub(crate) fn route_path(setting: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') {
        return Err(ConfigError::invalid(setting, path, "must start with /"));
    }
    if path.len() > MAX_ROUTE_PATH {
        return Err(ConfigError::invalid(
            setting,
            path,
            format!("longer than {MAX_ROUTE_PATH} bytes"),
        ));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'%'))
    {
        return Err(ConfigError::invalid(
            setting,
            path,
            "must be a plain path: visible ASCII, no ?, # or %",
        ));
    }
    Ok(())
}

pub(crate) fn parse_u64(setting: &str, text: &str) -> Result<u64, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| ConfigError::invalid(setting, text, "must be a whole number"))
}

pub(crate) fn parse_bool(setting: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(setting, text, "must be true or false")),
    }
}
