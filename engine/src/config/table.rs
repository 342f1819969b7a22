//! The engine's top-level scalar settings, each written once: its name and
//! type, default, environment variable and how its text is read, file key
//! and how its value is read, rule, and doc line. The configuration's field
//! and getter, the builder's field, default and setter, the environment
//! reader, the file reader, `Debug`, and [`ENV_VARIABLES`](super::ENV_VARIABLES)
//! all follow from this table ([`scalar_settings!`] hands it to each
//! consumer). A new setting of this kind is one entry here and one row in
//! README.md's configuration table (a test checks the two agree).
//!
//! Settings with lists, several variables or rules across settings (the
//! sampler, exporters, headers, masking patterns, and the sub-structures
//! `batch`, `export_retry`, `limits`, `keep_errors`, `logs`) are still
//! written by hand in `mod.rs`, `env.rs` and `file.rs`.

use std::time::Duration;

use super::validate as v;
use super::{ConfigError, ConsoleFormat};

/// Calls `$consumer! { { $extra } rows... }` with every entry of the
/// table as one row `(name, type, default, variable, parser, file key, file
/// type, conversion, rule, [doc lines])`: `$extra` is what the consumer
/// needs besides the table (the file reader's other keys, the
/// environment's other variables).
macro_rules! scalar_settings {
    ($consumer:ident { $($extra:tt)* }) => {
        $crate::config::table::rows! {
            $consumer { $($extra)* }

            /// False when `OTEL_SDK_DISABLED=true`: the engine then traces
            /// nothing (default true).
            enabled: bool = true;
            env "OTEL_SDK_DISABLED" => $crate::config::table::disabled;
            file enabled: bool => |on| on;
            check |_, _| Ok(());

            /// The format of the console exporter (default `pretty`).
            console_format: $crate::config::ConsoleFormat = $crate::config::ConsoleFormat::Pretty;
            env "FAULTLINE_CONSOLE_FORMAT" => $crate::config::table::console_format;
            file console_format: $crate::config::table::FormatName => |name| name.0;
            check |_, _| Ok(());

            /// Whether personal data is masked before export (default on).
            pii_masking: bool = true;
            env "FAULTLINE_PII_MASKING" => $crate::config::table::boolean;
            file pii_masking: bool => |on| on;
            check |_, _| Ok(());

            /// Whether incoming trace context becomes the parent (default
            /// true; see also `trusted_peers`).
            trust_incoming_context: bool = true;
            env "FAULTLINE_TRUST_INCOMING_CONTEXT" => $crate::config::table::boolean;
            file trust_incoming_context: bool => |on| on;
            check |_, _| Ok(());

            /// The longest [`Engine::shutdown`](crate::Engine::shutdown)
            /// waits to flush (default 5 s, 1 ms to 60 s).
            shutdown_timeout: std::time::Duration = std::time::Duration::from_secs(5);
            env "FAULTLINE_SHUTDOWN_TIMEOUT_MS" => $crate::config::table::millis;
            file shutdown_timeout_ms: u64 => std::time::Duration::from_millis;
            check $crate::config::table::within_a_minute;
        }
    };
}
pub(crate) use scalar_settings;

/// Turns the table's entries into the rows its consumers read.
macro_rules! rows {
    (
        $consumer:ident { $($extra:tt)* }
        $(
            $(#[doc = $doc:literal])+
            $name:ident: $ty:ty = $default:expr;
            env $var:literal => $parse:expr;
            file $key:ident: $file_ty:ty => $from_file:expr;
            check $check:expr;
        )+
    ) => {
        $consumer! {
            { $($extra)* }
            $(($name, $ty, $default, $var, $parse, $key, $file_ty, $from_file, $check, [$($doc)+]))+
        }
    };
}
pub(crate) use rows;

/// Defines [`Scalars`] (the table's values, held by both the configuration
/// and its builder), its default, environment reader, rules and `Debug`
/// fields, and the getters and setters.
macro_rules! define_scalars {
    ({} $(($name:ident, $ty:ty, $default:expr, $var:literal, $parse:expr, $key:ident, $file_ty:ty, $from_file:expr, $check:expr, [$($doc:literal)+]))+) => {
        /// The values of the table's settings.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub(crate) struct Scalars {
            $(pub(crate) $name: $ty,)+
        }

        impl Default for Scalars {
            fn default() -> Self {
                Scalars { $($name: $default,)+ }
            }
        }

        impl Scalars {
            /// Reads each setting's variable; `read` records which
            /// variable set which setting (for errors found later).
            // Each entry's closure is bound to a typed fn pointer (which
            // checks it against the entry's type) and called once.
            #[allow(clippy::redundant_closure_call)]
            pub(crate) fn read_env(
                &mut self,
                get: &dyn Fn(&str) -> Option<String>,
                read: &mut dyn FnMut(&'static str, &'static str),
            ) -> Result<(), ConfigError> {
                $(
                    if let Some(text) = get($var) {
                        let parse: fn(&str, &str) -> Result<$ty, ConfigError> = $parse;
                        self.$name = parse($var, &text)?;
                        read(stringify!($name), $var);
                    }
                )+
                Ok(())
            }

            /// Checks each setting's rule; the error names the setting.
            // Each entry's closure is bound to a typed fn pointer (which
            // checks it against the entry's type) and called once.
            #[allow(clippy::redundant_closure_call)]
            pub(crate) fn check(&self) -> Result<(), ConfigError> {
                $(
                    let check: fn(&str, $ty) -> Result<(), ConfigError> = $check;
                    check(stringify!($name), self.$name)?;
                )+
                Ok(())
            }

            /// Adds each setting to a `Debug` output.
            pub(crate) fn debug_fields(&self, d: &mut std::fmt::DebugStruct<'_, '_>) {
                $(d.field(stringify!($name), &self.$name);)+
            }
        }

        impl $crate::config::TracingConfig {
            $(
                $(#[doc = $doc])+
                pub fn $name(&self) -> $ty {
                    self.scalars.$name
                }
            )+
        }

        impl $crate::config::TracingConfigBuilder {
            $(
                $(#[doc = $doc])+
                pub fn $name(mut self, value: $ty) -> Self {
                    self.scalars.$name = value;
                    self
                }
            )+
        }
    };
}

scalar_settings!(define_scalars {});

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

/// `pretty` or `json`.
pub(crate) fn console_format(var: &str, text: &str) -> Result<ConsoleFormat, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "pretty" => Ok(ConsoleFormat::Pretty),
        "json" => Ok(ConsoleFormat::Json),
        _ => Err(ConfigError::invalid(var, text, "must be pretty or json")),
    }
}

/// 1 ms to 60 s.
pub(crate) fn within_a_minute(setting: &str, value: Duration) -> Result<(), ConfigError> {
    v::duration_within(
        setting,
        value,
        Duration::from_millis(1),
        Duration::from_secs(60),
    )
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
