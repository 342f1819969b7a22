//! Wiring the engine with the plugins compiled into this build.

use faultline_engine::EngineBuilder;
use faultline_engine::config::TracingConfig;

/// An [`EngineBuilder`](faultline_engine::EngineBuilder) for `config` with
/// the exporter plugins of the enabled features registered, so that the
/// exporters the configuration names (`OTEL_TRACES_EXPORTER`) are found.
/// Plugins register here as they land; today only the engine's built-in
/// console exporter needs no plugin.
pub fn engine_builder(config: TracingConfig) -> EngineBuilder {
    faultline_engine::Engine::builder(config)
}
