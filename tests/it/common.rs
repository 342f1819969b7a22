//! Helpers shared by the integration tests.

use std::sync::{Arc, Mutex};

use faultline::config::{TracingConfig, TracingConfigBuilder};

/// A configuration with no configured exporter (tests add their own).
pub fn quiet_config() -> TracingConfigBuilder {
    TracingConfig::builder().service_name("it").exporters([])
}

/// An engine of `config` that exports to `spans` and is not installed as
/// the OpenTelemetry global.
pub fn memory_engine(
    config: faultline::config::TracingConfig,
    spans: &faultline::export::InMemoryExporter,
) -> faultline::Engine {
    faultline::Engine::builder(config)
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap()
}

/// A port on 127.0.0.1 that nothing listens on (bound once, then freed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `Write` whose bytes a test can read back.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts the server span of `GET {path}` (route `route`) from `client`,
/// with `headers`, as an adapter would.
pub fn start_get(
    engine: &faultline::Engine,
    route: &str,
    path: &str,
    headers: &http::HeaderMap,
    client: Option<std::net::IpAddr>,
) -> faultline::request::RequestSpan {
    let uri: http::Uri = path.parse().expect("a path");
    engine.start_request(
        &faultline::request::RequestInfo::new(
            &http::Method::GET,
            &uri,
            http::Version::HTTP_11,
            headers,
        )
        .with_route(Some(route))
        .with_client_address(client),
    )
}
