//! The engine's scalar settings, each written once: its name and type,
//! default, environment variables and how their text is read, file key and
//! how its value is read, rule, and doc line. Every group below is one
//! struct: [`Scalars`] (the top-level settings, whose getters are on
//! [`TracingConfig`](super::TracingConfig) and setters on its builder) and
//! the sub-structures [`BatchSettings`], [`ExportRetry`], [`KeepErrors`] and
//! [`Limits`] (public, with their getters). The structs, their defaults and
//! getters, the top-level setters, the environment reader, the file reader,
//! the rules of single settings, `Debug` and
//! [`ENV_VARIABLES`](super::ENV_VARIABLES) all follow from this table
//! ([`settings!`] hands it to each consumer). A new setting of this kind is
//! one entry here and one row in README.md's configuration table (a test
//! checks the two agree); a sub-structure's setting gets its builder setter
//! by hand, where several settings share one (`batch(queue, size, delay)`).
//! The rules across settings are [`TracingConfigBuilder::relations`], below.
//!
//! Written by hand, and why:
//! - `sample_rate` and `parent_based`: two variables (`OTEL_TRACES_SAMPLER`
//!   and `_ARG`) set both at once, or name a registered sampler.
//! - the lists (`exporters`, `propagators`, `resource_attributes`,
//!   `secret_keys`, the header lists, `pii_patterns`, `trusted_peers`,
//!   `excluded_routes`): each has its own item syntax, merging and
//!   de-duplication, and keeps a different type in the builder than in the
//!   configuration.
//! - `pii_hash_key`: a secret; its errors never show the value.
//! - `logs` (logs.rs) and the operations settings (`keep_slow`,
//!   `metrics_addr`, `resource_detectors`, samplers by name;
//!   operations.rs): their modules own them.
//!
//! `OTEL_RESOURCE_ATTRIBUTES` may also set `service_name`,
//! `service_version` and `deployment_environment`; env.rs reads it before
//! the table's variables, which win.

use std::time::Duration;

use super::validate as v;
use super::{ConfigError, ConsoleFormat, TracingConfigBuilder};

/// Calls `$consumer! { { $extra } groups... }` with every group of the
/// table: its struct's attributes, name, field in the configuration and
/// kind (`top` or `sub`), then one row per entry `(name, [name setting
/// name], type, default, [variables], parser, file key, [file type,
/// conversion], [rule], [doc lines], [getter], [setter])`, the bracketed
/// parts empty where the entry leaves them out (a file value of the
/// setting's type, no rule, the value as getter and setter). `$extra` is
/// what the consumer needs besides the table (the file reader's other
/// keys, the environment's other variables).
macro_rules! settings {
    ($consumer:ident { $($extra:tt)* }) => {
        $crate::config::table::rows! {
            $consumer { $($extra)* }

            /// The values of the top-level settings, held by both the
            /// configuration and its builder.
            #[derive(Debug, Clone, PartialEq)]
            pub(crate) struct Scalars in scalars (top) {
                /// False when `OTEL_SDK_DISABLED=true`: the engine then
                /// traces nothing (default true).
                enabled: bool = true;
                env "OTEL_SDK_DISABLED" => $crate::config::table::disabled;
                file enabled;

                /// `service.name` (default `unknown-service`): non-empty,
                /// ASCII letters, digits and hyphens, at most 255 bytes.
                service_name: String = $crate::config::DEFAULT_SERVICE_NAME.to_owned();
                env "OTEL_SERVICE_NAME" => |_, text| Ok(text.trim().to_owned());
                file service_name;
                check |setting, name| $crate::config::validate::service_name(setting, name);
                get -> &str = |name| name;
                set (name: impl Into<String>) => name.into();

                /// `service.version`, if set.
                service_version: Option<String> = None;
                env "FAULTLINE_SERVICE_VERSION" => $crate::config::table::some_text;
                file service_version: String => Some;
                check $crate::config::table::text_if_set;
                get -> Option<&str> = |version| version.as_deref();
                set (version: impl Into<String>) => Some(version.into());

                /// `deployment.environment.name` (`production`, `staging`,
                /// ...), if set.
                deployment_environment: Option<String> = None;
                env "FAULTLINE_ENVIRONMENT" => $crate::config::table::some_text;
                file deployment_environment: String => Some;
                check $crate::config::table::text_if_set;
                get -> Option<&str> = |environment| environment.as_deref();
                set (environment: impl Into<String>) => Some(environment.into());

                /// The format of the console exporter (default `pretty`).
                console_format: $crate::config::ConsoleFormat = $crate::config::ConsoleFormat::Pretty;
                env "FAULTLINE_CONSOLE_FORMAT" => $crate::config::table::console_format;
                file console_format: $crate::config::table::FormatName => |name| name.0;

                /// Whether personal data is masked before export (default on).
                pii_masking: bool = true;
                env "FAULTLINE_PII_MASKING" => $crate::config::table::boolean;
                file pii_masking;

                /// Whether incoming trace context becomes the parent (default
                /// true; see also `trusted_peers`).
                trust_incoming_context: bool = true;
                env "FAULTLINE_TRUST_INCOMING_CONTEXT" => $crate::config::table::boolean;
                file trust_incoming_context;

                /// The longest [`Engine::shutdown`](crate::Engine::shutdown)
                /// waits to flush (default 5 s, 1 ms to 60 s).
                shutdown_timeout: std::time::Duration = std::time::Duration::from_secs(5);
                env "FAULTLINE_SHUTDOWN_TIMEOUT_MS" => $crate::config::table::millis;
                file shutdown_timeout_ms: u64 => $crate::config::table::ms;
                check $crate::config::table::millis_within::<1, 60_000>;

                /// Where the adapters serve metrics when a correlator serves
                /// them (default `/metrics`; `None`, `off` in the environment
                /// or `""` in a file: not served by the adapters, for an
                /// application that serves them itself). A path starts with
                /// `/` and holds no query, fragment or white space.
                metrics_path: Option<String> = Some("/metrics".to_owned());
                env "FAULTLINE_METRICS_PATH" => $crate::config::table::route_or_off;
                file metrics_path: String => |path| (!path.is_empty()).then_some(path);
                check $crate::config::table::route_if_set;
                get -> Option<&str> = |path| path.as_deref();
                set (path: Option<&str>) => path.map(str::to_owned);
            }

            /// Settings of the OpenTelemetry batch span processor.
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            #[non_exhaustive]
            pub struct BatchSettings in batch (sub) {
                /// Spans that may wait for export; when full, new spans are
                /// dropped (and counted). Default 2048, 1 to 10,000,000.
                max_queue_size as batch_max_queue_size: usize = 2048;
                env "OTEL_BSP_MAX_QUEUE_SIZE" => $crate::config::table::at_least_one;
                file batch_max_queue_size;
                check $crate::config::table::within::<1, 10_000_000>;

                /// Spans handed to the exporters in one call (default 512, at
                /// most the queue size).
                max_export_batch_size as batch_max_export_batch_size: usize = 512;
                env "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => $crate::config::table::at_least_one;
                file batch_max_export_batch_size;

                /// The longest a finished span waits before its batch is
                /// exported (default 5 s, 1 ms to 1 h).
                scheduled_delay as batch_scheduled_delay: std::time::Duration = std::time::Duration::from_millis(5000);
                env "OTEL_BSP_SCHEDULE_DELAY" => $crate::config::table::millis;
                file batch_scheduled_delay_ms: u64 => $crate::config::table::ms;
                check $crate::config::table::millis_within::<1, 3_600_000>;
            }

            /// Retry and buffering of failed exports.
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            #[non_exhaustive]
            pub struct ExportRetry in export_retry (sub) {
                /// Retries after the first failed attempt of a batch
                /// (default 3, at most 100).
                max_retries as max_export_retries: u32 = 3;
                env "FAULTLINE_EXPORT_MAX_RETRIES" => $crate::config::table::retries;
                file max_export_retries;
                check |setting, n| $crate::config::validate::at_most(setting, u64::from(*n), 100);

                /// The first back-off; each retry doubles it, with jitter
                /// (default 100 ms, 1 ms to 60 s).
                backoff_base: std::time::Duration = std::time::Duration::from_millis(100);
                env "FAULTLINE_EXPORT_BACKOFF_BASE_MS" => $crate::config::table::millis;
                file backoff_base_ms: u64 => $crate::config::table::ms;
                check $crate::config::table::millis_within::<1, 60_000>;

                /// The longest back-off (default 5 s, from the first back-off
                /// to 600 s).
                backoff_max: std::time::Duration = std::time::Duration::from_secs(5);
                env "FAULTLINE_EXPORT_BACKOFF_MAX_MS" => $crate::config::table::millis;
                file backoff_max_ms: u64 => $crate::config::table::ms;

                /// Spans kept in memory after the retries failed, exported
                /// first when the backend returns; when full, the oldest are
                /// dropped and counted (default 16384, at most 10,000,000).
                buffer_capacity as export_buffer_capacity: usize = 16_384;
                env "FAULTLINE_EXPORT_BUFFER_CAPACITY" => $crate::config::table::count;
                file export_buffer_capacity;
                check $crate::config::table::within::<0, 10_000_000>;

                /// The most memory the buffered spans may take, in bytes as
                /// estimated from their strings and structures (default 16
                /// MiB, at most 1 TiB): when a new batch would pass it, the
                /// oldest whole batches are dropped and counted, as for
                /// [`buffer_capacity`](Self::buffer_capacity). It bounds what
                /// an outage costs when spans are large; the newest batch and
                /// the one being sent are always kept.
                buffer_bytes as export_buffer_bytes: usize = 16 << 20;
                env "FAULTLINE_EXPORT_BUFFER_BYTES" => $crate::config::table::count;
                file export_buffer_bytes;
                check $crate::config::table::within::<0, { 1 << 40 }>;

                /// The longest one export attempt may take (default 10 s, 1
                /// ms to 600 s).
                timeout as export_timeout: std::time::Duration = std::time::Duration::from_secs(10);
                env "OTEL_BSP_EXPORT_TIMEOUT" => $crate::config::table::millis;
                file export_timeout_ms: u64 => $crate::config::table::ms;
                check $crate::config::table::millis_within::<1, 600_000>;
            }

            /// Error-keeping sampling: unsampled requests that end in an
            /// error are exported all the same (see
            /// [`TracingConfig::keep_errors`](crate::config::TracingConfig::keep_errors)).
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            #[non_exhaustive]
            pub struct KeepErrors in keep_errors (sub) {
                /// Whether it is on (default true).
                enabled as keep_errors: bool = true;
                env "FAULTLINE_KEEP_ERRORS" => $crate::config::table::boolean;
                file keep_errors;

                /// The most unsampled traces waiting for their root span at
                /// once (default 4096, 1 to 1,000,000).
                max_traces as keep_errors_max_traces: usize = 4096;
                env "FAULTLINE_KEEP_ERRORS_MAX_TRACES" => $crate::config::table::at_least_one;
                file keep_errors_max_traces;
                check $crate::config::table::within::<1, 1_000_000>;

                /// The most spans kept waiting for one trace (default 128, 1
                /// to 100,000).
                max_spans_per_trace as keep_errors_max_spans_per_trace: usize = 128;
                env "FAULTLINE_KEEP_ERRORS_MAX_SPANS" => $crate::config::table::at_least_one;
                file keep_errors_max_spans_per_trace;
                check $crate::config::table::within::<1, 100_000>;
            }

            /// What one span may hold: past these, the SDK drops attributes,
            /// events and links, and the export pipeline cuts long values,
            /// counting each cut
            /// ([`ExportStats::limits`](crate::export::ExportStats)). The
            /// defaults are OpenTelemetry's counts, and 16 KiB for a value.
            /// Where two variables set one limit, the span-specific one wins.
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            #[non_exhaustive]
            pub struct Limits in limits (sub) {
                /// The longest string value exported, in bytes (longer ones
                /// are cut at a character boundary; default 16384, 16 to 16
                /// MiB).
                attribute_value_length as attribute_value_length_limit: usize = 16 * 1024;
                env "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT" => |var, text| $crate::config::env::count(var, text, 16);
                file attribute_value_length_limit;
                check $crate::config::table::within::<16, { 16 << 20 }>;

                /// Attributes per span (default 128, 1 to 65536).
                attributes_per_span: u32 = 128;
                env "OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" => $crate::config::table::span_limit;
                file attributes_per_span;
                check $crate::config::table::span_limit_within;

                /// Events per span (default 128, 1 to 65536).
                events_per_span: u32 = 128;
                env "OTEL_SPAN_EVENT_COUNT_LIMIT" => $crate::config::table::span_limit;
                file events_per_span;
                check $crate::config::table::span_limit_within;

                /// Links per span (default 128, 1 to 65536).
                links_per_span: u32 = 128;
                env "OTEL_SPAN_LINK_COUNT_LIMIT" => $crate::config::table::span_limit;
                file links_per_span;
                check $crate::config::table::span_limit_within;

                /// Attributes per event (default 128, 1 to 65536).
                attributes_per_event: u32 = 128;
                env "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT" => $crate::config::table::span_limit;
                file attributes_per_event;
                check $crate::config::table::span_limit_within;

                /// Attributes per link (default 128, 1 to 65536).
                attributes_per_link: u32 = 128;
                env "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT" => $crate::config::table::span_limit;
                file attributes_per_link;
                check $crate::config::table::span_limit_within;
            }
        }
    };
}
pub(crate) use settings;

/// Turns the table's groups and entries into the rows its consumers read.
macro_rules! rows {
    (
        $consumer:ident { $($extra:tt)* }
        $(
            $(#[$meta:meta])*
            $vis:vis struct $group:ident in $field:ident ($kind:ident) {
                $(
                    $(#[doc = $doc:literal])+
                    $name:ident $(as $setting:ident)?: $ty:ty = $default:expr;
                    env $($var:literal),+ => $parse:expr;
                    file $key:ident $(: $file_ty:ty => $from_file:expr)?;
                    $(check $check:expr;)?
                    $(get -> $get_ty:ty = |$gv:ident| $get:expr;)?
                    $(set ($arg:ident: $arg_ty:ty) => $set:expr;)?
                )+
            }
        )+
    ) => {
        $consumer! {
            { $($extra)* }
            $(
                [$(#[$meta])* $vis struct $group in $field ($kind)]
                $((
                    $name, [$name $($setting)?], $ty, $default, [$($var),+], $parse,
                    $key, [$($file_ty, $from_file)?], [$($check)?], [$($doc)+],
                    [$($get_ty, $gv, $get)?], [$($arg, $arg_ty, $set)?]
                ))+
            )+
        }
    };
}
pub(crate) use rows;

/// The name a setting has in errors and files: its own, or the one after
/// `as`.
macro_rules! setting_name {
    ($name:ident) => {
        stringify!($name)
    };
    ($name:ident $setting:ident) => {
        stringify!($setting)
    };
}

/// An entry's rule: its `check`, or none.
macro_rules! rule {
    ([]) => {
        |_, _| Ok(())
    };
    ([$check:expr]) => {
        $check
    };
}

/// The type of an entry's file key: its own, or the setting's.
macro_rules! file_type {
    ($ty:ty, []) => {
        $ty
    };
    ($ty:ty, [$file_ty:ty, $from_file:expr]) => {
        $file_ty
    };
}
pub(crate) use file_type;

/// A file's value as the setting's: converted by the entry, or as it is.
macro_rules! from_file {
    ($ty:ty, [], $value:expr) => {
        $value
    };
    ($ty:ty, [$file_ty:ty, $from_file:expr], $value:expr) => {{
        let from_file: fn($file_ty) -> $ty = $from_file;
        from_file($value)
    }};
}
pub(crate) use from_file;

/// A getter: the value itself, or what the entry's `get` makes of it.
macro_rules! getter {
    ([$($doc:literal)+] $name:ident: $ty:ty, [$($via:ident)?], []) => {
        $(#[doc = $doc])+
        pub fn $name(&self) -> $ty {
            self$(.$via)?.$name
        }
    };
    ([$($doc:literal)+] $name:ident: $ty:ty, [$($via:ident)?], [$get_ty:ty, $gv:ident, $get:expr]) => {
        $(#[doc = $doc])+
        pub fn $name(&self) -> $get_ty {
            let $gv = &self$(.$via)?.$name;
            $get
        }
    };
}

/// A builder setter: the value itself, or what the entry's `set` makes of
/// its argument.
macro_rules! setter {
    ([$($doc:literal)+] $name:ident: $ty:ty, []) => {
        $(#[doc = $doc])+
        pub fn $name(mut self, value: $ty) -> Self {
            self.scalars.$name = value;
            self
        }
    };
    ([$($doc:literal)+] $name:ident: $ty:ty, [$arg:ident, $arg_ty:ty, $set:expr]) => {
        $(#[doc = $doc])+
        pub fn $name(mut self, $arg: $arg_ty) -> Self {
            self.scalars.$name = $set;
            self
        }
    };
}

/// The getters (and, for the top-level group, the builder's setters and
/// the configuration's `Debug` fields) of one group.
macro_rules! accessors {
    (top $group:ident $field:ident $(($name:ident, $ty:ty, $doc:tt, $get:tt, $set:tt))+) => {
        impl $group {
            /// Adds each setting to a `Debug` output.
            pub(crate) fn debug_fields(&self, d: &mut std::fmt::DebugStruct<'_, '_>) {
                $(d.field(stringify!($name), &self.$name);)+
            }
        }
        impl $crate::config::TracingConfig {
            $(getter!($doc $name: $ty, [$field], $get);)+
        }
        impl $crate::config::TracingConfigBuilder {
            $(setter!($doc $name: $ty, $set);)+
        }
    };
    (sub $group:ident $field:ident $(($name:ident, $ty:ty, $doc:tt, $get:tt, $set:tt))+) => {
        impl $group {
            $(getter!($doc $name: $ty, [], $get);)+
        }
    };
}

/// Defines each group's struct, its default and accessors, and the
/// builder's environment reader and rules for the whole table.
macro_rules! define_groups {
    ({} $(
        [$(#[$meta:meta])* $vis:vis struct $group:ident in $field:ident ($kind:ident)]
        $(($name:ident, $sname:tt, $ty:ty, $default:expr, [$($var:literal),+], $parse:expr, $key:ident, $file:tt, $check:tt, $doc:tt, $get:tt, $set:tt))+
    )+) => {
        $(
            $(#[$meta])*
            $vis struct $group {
                $(pub(crate) $name: $ty,)+
            }

            impl Default for $group {
                fn default() -> Self {
                    $group { $($name: $default,)+ }
                }
            }

            accessors!($kind $group $field $(($name, $ty, $doc, $get, $set))+);
        )+

        impl TracingConfigBuilder {
            /// Reads each setting's variables (a later one of the same
            /// setting wins) and checks the setting's own rule under the
            /// variable's name; records which variable set which setting,
            /// for the rules across settings checked later.
            // Each entry's closures are bound to typed fn pointers (which
            // check them against the entry's type) and called once.
            #[allow(clippy::redundant_closure_call)]
            pub(crate) fn read_table_env(
                &mut self,
                get: &dyn Fn(&str) -> Option<String>,
            ) -> Result<(), ConfigError> {
                $($($(
                    if let Some(text) = get($var) {
                        let parse: fn(&str, &str) -> Result<$ty, ConfigError> = $parse;
                        let check: fn(&str, &$ty) -> Result<(), ConfigError> = rule!($check);
                        let value = parse($var, &text)?;
                        check($var, &value)?;
                        self.$field.$name = value;
                        self.set_from_env(setting_name!$sname, $var);
                    }
                )+)+)+
                Ok(())
            }

            /// Checks each setting's own rule; the error names the setting.
            #[allow(clippy::redundant_closure_call)]
            pub(crate) fn check_table(&self) -> Result<(), ConfigError> {
                $($(
                    let check: fn(&str, &$ty) -> Result<(), ConfigError> = rule!($check);
                    check(setting_name!$sname, &self.$field.$name)?;
                )+)+
                Ok(())
            }
        }
    };
}

settings!(define_groups {});

impl TracingConfigBuilder {
    /// The rules across the table's settings, all of them: a batch holds
    /// at most the queue, the longest back-off is at least the first. A
    /// broken one names the setting that must change.
    pub(crate) fn relations(&self) -> Result<(), ConfigError> {
        let retry = &self.export_retry;
        v::duration_within(
            "backoff_max",
            retry.backoff_max,
            retry.backoff_base,
            Duration::from_secs(600),
        )?;
        let batch = &self.batch;
        v::count_within(
            "batch_max_export_batch_size",
            batch.max_export_batch_size,
            1,
            batch.max_queue_size,
        )
    }

    /// What the environment implies across settings: a smaller queue alone
    /// (`OTEL_BSP_MAX_QUEUE_SIZE` without `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`)
    /// shrinks the default batch with it.
    pub(crate) fn env_relations(&mut self) {
        let set = |setting: &str| self.from_env.iter().any(|(s, _)| *s == setting);
        if set("batch_max_queue_size") && !set("batch_max_export_batch_size") {
            self.batch.max_export_batch_size = self
                .batch
                .max_export_batch_size
                .min(self.batch.max_queue_size);
        }
    }
}

/// `OTEL_SDK_DISABLED`: true turns tracing off.
pub(crate) fn disabled(var: &str, text: &str) -> Result<bool, ConfigError> {
    Ok(!v::parse_bool(var, text)?)
}

/// A boolean variable (`true`, `false`, `1`, `0`, ...).
pub(crate) fn boolean(var: &str, text: &str) -> Result<bool, ConfigError> {
    v::parse_bool(var, text)
}

/// A whole number of milliseconds.
pub(crate) fn millis(var: &str, text: &str) -> Result<Duration, ConfigError> {
    super::env::millis(var, text)
}

/// A whole number.
pub(crate) fn count(var: &str, text: &str) -> Result<usize, ConfigError> {
    super::env::count(var, text, 0)
}

/// A whole number, at least 1.
pub(crate) fn at_least_one(var: &str, text: &str) -> Result<usize, ConfigError> {
    super::env::count(var, text, 1)
}

/// A number of retries (at most 100, said before it is narrowed).
pub(crate) fn retries(var: &str, text: &str) -> Result<u32, ConfigError> {
    let n = v::parse_u64(var, text)?;
    v::at_most(var, n, 100)?;
    Ok(n as u32)
}

/// A count limit of a span (1 to 65536).
pub(crate) fn span_limit(var: &str, text: &str) -> Result<u32, ConfigError> {
    let n = at_least_one(var, text)?;
    v::count_within(var, n, 1, 65_536)?;
    Ok(n as u32)
}

/// 1 to 65536.
pub(crate) fn span_limit_within(setting: &str, n: &u32) -> Result<(), ConfigError> {
    v::count_within(setting, *n as usize, 1, 65_536)
}

/// A text value, set.
pub(crate) fn some_text(_: &str, text: &str) -> Result<Option<String>, ConfigError> {
    Ok(Some(text.to_owned()))
}

/// Non-empty, without control characters, when set.
pub(crate) fn text_if_set(setting: &str, text: &Option<String>) -> Result<(), ConfigError> {
    text.as_deref()
        .map_or(Ok(()), |text| v::non_empty_text(setting, text))
}

/// A route path, or `off`: not served.
pub(crate) fn route_or_off(_: &str, text: &str) -> Result<Option<String>, ConfigError> {
    let text = text.trim();
    Ok((!text.is_empty() && !text.eq_ignore_ascii_case("off")).then(|| text.to_owned()))
}

/// A route path, when set.
pub(crate) fn route_if_set(setting: &str, path: &Option<String>) -> Result<(), ConfigError> {
    path.as_deref()
        .map_or(Ok(()), |path| v::route_path(setting, path))
}

/// `pretty` or `json`.
pub(crate) fn console_format(var: &str, text: &str) -> Result<ConsoleFormat, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "pretty" => Ok(ConsoleFormat::Pretty),
        "json" => Ok(ConsoleFormat::Json),
        _ => Err(ConfigError::invalid(var, text, "must be pretty or json")),
    }
}

/// `MIN..=MAX` milliseconds.
pub(crate) fn millis_within<const MIN: u64, const MAX: u64>(
    setting: &str,
    value: &Duration,
) -> Result<(), ConfigError> {
    v::duration_within(
        setting,
        *value,
        Duration::from_millis(MIN),
        Duration::from_millis(MAX),
    )
}

/// `MIN..=MAX`.
pub(crate) fn within<const MIN: usize, const MAX: usize>(
    setting: &str,
    value: &usize,
) -> Result<(), ConfigError> {
    v::count_within(setting, *value, MIN, MAX)
}

/// A file's whole number of milliseconds.
pub(crate) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A console format's name in a file (`pretty`, `json`).
#[derive(Debug)]
pub(crate) struct FormatName(pub(crate) ConsoleFormat);

impl<'de> serde::Deserialize<'de> for FormatName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        console_format("console_format", &text)
            .map(FormatName)
            .map_err(|_| {
                serde::de::Error::invalid_value(
                    serde::de::Unexpected::Str(&text),
                    &"one of: pretty json",
                )
            })
    }
}
