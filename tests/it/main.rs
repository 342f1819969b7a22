//! faultline's integration tests: one binary for the whole workspace.
//!
//! Only `engine::global_api_spans_are_masked` installs an engine as the
//! OpenTelemetry global; every other test builds with `install_global(false)`
//! so that tests running in parallel never share state.

mod common;
mod conformance;
mod dashboards;
mod day_two;
mod demo;
mod engine;
mod faults;
mod grpc;
mod hostile;
mod interop;
mod jaeger;
mod keep_errors;
mod logs;
mod masking;
mod otlp;
mod peers;
mod prometheus;
mod secrets;
mod sentry;
mod service;
mod setup;
mod tracing_bridge;
mod viewer;
