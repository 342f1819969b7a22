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
