//! Header access for propagators: [`Carrier`] reads, [`CarrierMut`] writes.
//!
//! Implemented for [`http::HeaderMap`] (what axum, poem, warp, reqwest and
//! tonic use) and for `HashMap<String, String>`; adapters for other header
//! types take a few lines.

use std::collections::HashMap;

/// Read access to a set of headers (or any key/value carrier).
///
/// Keys are looked up case-insensitively by lowercase name. An
/// implementation must never panic, whatever the headers hold: a value that
/// is not valid UTF-8 is reported as absent by [`get`](Carrier::get) and
/// skipped by [`get_all`](Carrier::get_all).
pub trait Carrier {
    /// The first value of `key`, if present and valid UTF-8.
    fn get(&self, key: &str) -> Option<&str>;

    /// Every value of `key`, in order (repeated headers). The default returns
    /// at most the one value of [`get`](Carrier::get).
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.get(key).into_iter().collect()
    }

    /// How many values `key` has, counting values that are not UTF-8
    /// (a propagator rejects a repeated `traceparent`).
    fn count(&self, key: &str) -> usize {
        self.get_all(key).len()
    }

    /// Every key present.
    fn keys(&self) -> Vec<&str>;
}

/// Write access to a set of headers.
pub trait CarrierMut {
    /// Sets `key` to `value`, replacing earlier values. A value that is not a
    /// valid header value is skipped, never a panic.
    fn set(&mut self, key: &str, value: String);
}

impl Carrier for http::HeaderMap {
    fn get(&self, key: &str) -> Option<&str> {
        http::HeaderMap::get(self, key).and_then(|v| v.to_str().ok())
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        http::HeaderMap::get_all(self, key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    fn count(&self, key: &str) -> usize {
        http::HeaderMap::get_all(self, key).iter().count()
    }

    fn keys(&self) -> Vec<&str> {
        http::HeaderMap::keys(self).map(|k| k.as_str()).collect()
    }
}

impl CarrierMut for http::HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::try_from(value),
        ) else {
            return;
        };
        self.insert(name, value);
    }
}

impl<S: std::hash::BuildHasher> Carrier for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        match HashMap::get(self, key) {
            Some(v) => Some(v.as_str()),
            None => self
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str()),
        }
    }

    fn keys(&self) -> Vec<&str> {
        HashMap::keys(self).map(String::as_str).collect()
    }
}

impl<S: std::hash::BuildHasher> CarrierMut for HashMap<String, String, S> {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_ascii_lowercase(), value);
    }
}

/// Lets a [`Carrier`] serve as an OpenTelemetry `Extractor`.
pub(crate) struct AsExtractor<'a>(pub(crate) &'a dyn Carrier);

impl opentelemetry::propagation::Extractor for AsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all = self.0.get_all(key);
        (!all.is_empty()).then_some(all)
    }
}

/// Lets a [`CarrierMut`] serve as an OpenTelemetry `Injector`.
pub(crate) struct AsInjector<'a>(pub(crate) &'a mut dyn CarrierMut);

impl opentelemetry::propagation::Injector for AsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_map_reads_repeated_and_skips_non_utf8() {
        let mut headers = http::HeaderMap::new();
        headers.append("tracestate", "a=1".parse().unwrap());
        headers.append(
            "tracestate",
            http::HeaderValue::from_bytes(b"b=\xff").unwrap(),
        );
        headers.append("tracestate", "c=3".parse().unwrap());
        assert_eq!(Carrier::get(&headers, "tracestate"), Some("a=1"));
        assert_eq!(Carrier::get_all(&headers, "tracestate"), vec!["a=1", "c=3"]);
        assert_eq!(Carrier::count(&headers, "tracestate"), 3);
        assert_eq!(Carrier::get(&headers, "TraceState"), Some("a=1"));
    }

    #[test]
    fn header_map_set_skips_invalid_values() {
        let mut headers = http::HeaderMap::new();
        CarrierMut::set(&mut headers, "traceparent", "ok".to_owned());
        CarrierMut::set(&mut headers, "bad", "line\nbreak".to_owned());
        CarrierMut::set(&mut headers, "bad name", "x".to_owned());
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn hash_map_is_case_insensitive() {
        let mut map: HashMap<String, String> = HashMap::new();
        CarrierMut::set(&mut map, "TraceParent", "v".to_owned());
        assert_eq!(Carrier::get(&map, "traceparent"), Some("v"));
        map.insert("X-Mixed".to_owned(), "m".to_owned());
        assert_eq!(Carrier::get(&map, "x-mixed"), Some("m"));
        assert_eq!(Carrier::keys(&map).len(), 2);
    }
}
