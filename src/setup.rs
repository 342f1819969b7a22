//! Wiring the engine with the plugins compiled into this build.

use faultline_engine::EngineBuilder;
use faultline_engine::config::TracingConfig;

/// An [`EngineBuilder`] for `config` with
/// the exporter plugins of the enabled features registered, so that the
/// exporters the configuration names (`OTEL_TRACES_EXPORTER`) are found:
/// `otlp` with the feature `otlp`, `jaeger` with the feature `jaeger`;
/// `console` is built into the engine. Naming an exporter whose feature is
/// off is an error at build time that says which feature to turn on.
pub fn engine_builder(config: TracingConfig) -> EngineBuilder {
    #[allow(unused_mut)]
    let mut builder = faultline_engine::Engine::builder(config);
    #[cfg(feature = "otlp")]
    {
        builder =
            builder.exporter_factory(faultline_engine::config::ExporterKind::Otlp, |config| {
                faultline_otlp::OtlpExporter::from_config(config)
                    .map(|e| Box::new(e) as Box<dyn faultline_engine::export::Exporter>)
                    .map_err(|e| e.to_string())
            });
    }
    #[cfg(feature = "jaeger")]
    {
        use faultline_engine::config::ExporterKind;
        use faultline_jaeger::JaegerExporter;
        builder = builder.exporter_factory(ExporterKind::Jaeger, |config| {
            Ok(Box::new(JaegerExporter::from_config(config)?))
        });
    }
    builder
}
