//! The viewer's settings: defaults, setters and `FAULTLINE_VIEWER_*`
//! environment variables.

use std::net::SocketAddr;

use faultline_engine::config::ConfigError;

/// Where the viewer listens: `host:port` (default [`DEFAULT_ADDR`]).
pub const ENV_ADDR: &str = "FAULTLINE_VIEWER_ADDR";
/// The token every request must carry; required for a non-loopback address.
pub const ENV_TOKEN: &str = "FAULTLINE_VIEWER_TOKEN";
/// The store's bound in bytes (default [`DEFAULT_MAX_BYTES`]).
pub const ENV_MAX_BYTES: &str = "FAULTLINE_VIEWER_MAX_BYTES";

/// Every environment variable [`ViewerConfig::from_env`] reads.
pub const ENV_VARIABLES: &[&str] = &[ENV_ADDR, ENV_TOKEN, ENV_MAX_BYTES];

/// The default address: loopback, Jaeger's UI port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:16686";
/// The default bound of the store: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// The smallest bound accepted: 64 KiB.
pub const MIN_MAX_BYTES: usize = 64 << 10;
/// Shortest accepted token, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// The viewer's settings.
///
/// ```
/// use faultline_viewer::ViewerConfig;
///
/// let config = ViewerConfig::with_env_from(|name| match name {
///     "FAULTLINE_VIEWER_ADDR" => Some("127.0.0.1:0".into()),
///     _ => None,
/// })?;
/// assert!(config.addr().ip().is_loopback());
///
/// // Anything but loopback needs a token.
/// let err = ViewerConfig::with_env_from(|name| {
///     (name == "FAULTLINE_VIEWER_ADDR").then(|| "0.0.0.0:16686".into())
/// })
/// .unwrap_err();
/// assert!(err.to_string().contains("FAULTLINE_VIEWER_TOKEN"));
/// # Ok::<(), faultline_engine::config::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewerConfig {
    addr: SocketAddr,
    token: Option<String>,
    max_bytes: usize,
}

impl std::fmt::Debug for ViewerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Default for ViewerConfig {
    fn default() -> Self {
        ViewerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 16686)),
            token: None,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

impl ViewerConfig {
    /// The settings from the process environment over the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::with_env_from(|name| std::env::var(name).ok())
    }

    /// The settings from `lookup` (an environment) over the defaults,
    /// checked ([`validate`](Self::validate)).
    pub fn with_env_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = ViewerConfig::default();
        if let Some(addr) = get(ENV_ADDR) {
            config.addr = addr.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    ENV_ADDR,
                    &addr,
                    "must be an IP address and port (host:port)",
                )
            })?;
        }
        config.token = get(ENV_TOKEN);
        if let Some(bytes) = get(ENV_MAX_BYTES) {
            config.max_bytes = bytes.trim().parse().map_err(|_| {
                ConfigError::invalid(ENV_MAX_BYTES, &bytes, "must be a whole number of bytes")
            })?;
        }
        config.checked(ENV_ADDR, ENV_TOKEN, ENV_MAX_BYTES)
    }

    /// The address to listen on (port 0: any free port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The token requests must carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
    /// The store's bound, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Sets the address.
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }
    /// Sets the token every request must carry.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Sets the store's bound, in bytes.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Checks the rules: a non-loopback address needs a token of at least
    /// [`MIN_TOKEN_LEN`] bytes; the bound is at least [`MIN_MAX_BYTES`].
    pub fn validate(self) -> Result<Self, ConfigError> {
        self.checked("addr", "token", "max_bytes")
    }

    fn checked(self, addr: &str, token: &str, max_bytes: &str) -> Result<Self, ConfigError> {
        if self.token.is_none() && !self.addr.ip().is_loopback() {
            return Err(ConfigError::invalid(
                addr,
                &self.addr.to_string(),
                format!(
                    "a non-loopback address needs {ENV_TOKEN} (the token every request must then carry)"
                ),
            ));
        }
        if let Some(t) = &self.token
            && (t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError::invalid(
                token,
                "<hidden>",
                format!("must be at least {MIN_TOKEN_LEN} printable ASCII characters"),
            ));
        }
        if self.max_bytes < MIN_MAX_BYTES {
            return Err(ConfigError::invalid(
                max_bytes,
                &self.max_bytes.to_string(),
                format!("must be at least {MIN_MAX_BYTES}"),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn error(pairs: &'static [(&'static str, &'static str)]) -> String {
        ViewerConfig::with_env_from(env(pairs))
            .expect_err("the settings are refused")
            .to_string()
    }

    #[test]
    fn the_environment_sets_every_setting_over_the_defaults() {
        let config = ViewerConfig::with_env_from(env(&[
            (ENV_ADDR, " 0.0.0.0:9999 "),
            (ENV_TOKEN, "0123456789abcdef"),
            (ENV_MAX_BYTES, "1048576"),
        ]))
        .expect("valid settings");
        assert_eq!(config.addr(), SocketAddr::from(([0, 0, 0, 0], 9999)));
        assert_eq!(config.token(), Some("0123456789abcdef"));
        assert_eq!(config.max_bytes(), 1 << 20);
        // Blank values are unset.
        let config = ViewerConfig::with_env_from(env(&[(ENV_ADDR, "  "), (ENV_MAX_BYTES, "")]))
            .expect("defaults");
        assert_eq!(config, ViewerConfig::default());
    }

    #[test]
    fn bad_values_name_their_variable_and_never_show_the_token() {
        let e = error(&[(ENV_ADDR, "localhost")]);
        assert!(e.contains(ENV_ADDR) && e.contains("host:port"), "{e}");
        let e = error(&[(ENV_MAX_BYTES, "lots")]);
        assert!(
            e.contains(ENV_MAX_BYTES) && e.contains("whole number"),
            "{e}"
        );
        let e = error(&[(ENV_MAX_BYTES, "1024")]);
        assert!(
            e.contains(ENV_MAX_BYTES) && e.contains(&MIN_MAX_BYTES.to_string()),
            "{e}"
        );
        let e = error(&[(ENV_TOKEN, "short-secret")]);
        assert!(e.contains(ENV_TOKEN) && !e.contains("short-secret"), "{e}");
        let e = error(&[(ENV_TOKEN, "a token with spaces in it")]);
        assert!(
            e.contains("printable") && !e.contains("spaces in it"),
            "{e}"
        );
        let e = error(&[(ENV_ADDR, "0.0.0.0:16686")]);
        assert!(e.contains(ENV_TOKEN), "a public address needs a token: {e}");
    }

    #[test]
    fn the_builders_are_checked_by_validate_and_debug_hides_the_token() {
        let config = ViewerConfig::default()
            .with_addr(SocketAddr::from(([127, 0, 0, 1], 1)))
            .with_token("0123456789abcdef-secret")
            .with_max_bytes(MIN_MAX_BYTES)
            .validate()
            .expect("valid");
        let debug = format!("{config:?}");
        assert!(
            debug.contains("<set>") && !debug.contains("secret"),
            "{debug}"
        );
        assert!(
            ViewerConfig::default()
                .with_max_bytes(MIN_MAX_BYTES - 1)
                .validate()
                .is_err()
        );
    }
}
