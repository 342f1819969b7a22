//! Helpers shared by the integration tests.

use std::sync::{Arc, Mutex};

use faultline::config::{TracingConfig, TracingConfigBuilder};

/// A configuration with no configured exporter (tests add their own).
pub fn quiet_config() -> TracingConfigBuilder {
    TracingConfig::builder().service_name("it").exporters([])
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
