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

    /// Calls `f` with every value of `key`, in order, until it returns
    /// false: `Some(text)` for a UTF-8 value, `None` for one that is not.
    /// Propagators use this on every request; implementations should make
    /// it allocation-free. The default goes through [`get_all`](Carrier::get_all).
    fn visit(&self, key: &str, f: &mut dyn FnMut(Option<&str>) -> bool) {
        for value in self.get_all(key) {
            if !f(Some(value)) {
                return;
            }
        }
    }

    /// The first value of the header `name`, if present and text: what
    /// [`get`](Carrier::get) gives for `name.as_str()` (the default), for
    /// a caller that holds the name already made (an `http::HeaderMap`
    /// looks it up without parsing it again).
    fn header(&self, name: &http::HeaderName) -> Option<&str> {
        self.get(name.as_str())
    }

    /// Calls `f` with the bytes of every value of the header `name`, in
    /// order, until it returns false, values that are not text included
    /// (a recorded header keeps them). The default goes through
    /// [`visit`](Carrier::visit), without the values that are not UTF-8.
    fn visit_header(&self, name: &http::HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) {
        self.visit(name.as_str(), &mut |value| {
            value.is_none_or(|v| f(v.as_bytes()))
        });
    }

    /// The value of `key` as a shared header value, when the carrier holds
    /// exactly one and can hand it out without copying (a propagator that
    /// keeps a header as it arrived takes it). The default returns `None`.
    fn shared_value(&self, key: &str) -> Option<http::HeaderValue> {
        let _ = key;
        None
    }

    /// Whether the carrier certainly holds none of `names` (lowercase
    /// header names). The engine asks before extracting, so that a request
    /// without any trace header skips every propagator. The default cannot
    /// tell and returns `false`.
    fn lacks_all(&self, names: &[http::HeaderName]) -> bool {
        let _ = names;
        false
    }
}

/// Write access to a set of headers.
pub trait CarrierMut {
    /// Sets `key` to `value`, replacing earlier values. A value that is not a
    /// valid header value is skipped, never a panic.
    fn set(&mut self, key: &str, value: String);

    /// Sets `key` to a header value already made (a propagator passing on
    /// a header as it arrived). The default goes through
    /// [`set`](CarrierMut::set); an `http::HeaderMap` takes it without
    /// copying.
    fn set_value(&mut self, key: &str, value: http::HeaderValue) {
        if let Ok(text) = value.to_str() {
            self.set(key, text.to_owned());
        }
    }

    /// Sets the header `name` to a header value already made: what the
    /// built-in propagators call with their header names made once. The
    /// default goes through [`set_value`](CarrierMut::set_value); an
    /// `http::HeaderMap` inserts the name as it is, without looking it up.
    fn set_header(&mut self, name: &http::HeaderName, value: http::HeaderValue) {
        self.set_value(name.as_str(), value);
    }
}

/// Header names the propagators read on every request, made once, so that
/// a lookup does not parse the name again.
static KNOWN: [(&str, http::HeaderName); 6] = [
    ("traceparent", http::HeaderName::from_static("traceparent")),
    ("tracestate", http::HeaderName::from_static("tracestate")),
    ("baggage", http::HeaderName::from_static("baggage")),
    ("b3", http::HeaderName::from_static("b3")),
    (
        "uber-trace-id",
        http::HeaderName::from_static("uber-trace-id"),
    ),
    (
        "x-b3-traceid",
        http::HeaderName::from_static("x-b3-traceid"),
    ),
];

fn header_values<'a>(
    map: &'a http::HeaderMap,
    key: &str,
) -> http::header::GetAll<'a, http::HeaderValue> {
    match KNOWN.iter().find(|(k, _)| *k == key) {
        Some((_, name)) => map.get_all(name),
        None => map.get_all(key),
    }
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
        header_values(self, key).iter().count()
    }

    fn keys(&self) -> Vec<&str> {
        http::HeaderMap::keys(self).map(|k| k.as_str()).collect()
    }

    fn visit(&self, key: &str, f: &mut dyn FnMut(Option<&str>) -> bool) {
        if self.is_empty() {
            return;
        }
        for value in header_values(self, key).iter() {
            if !f(value.to_str().ok()) {
                return;
            }
        }
    }

    fn lacks_all(&self, names: &[http::HeaderName]) -> bool {
        // With a few headers, comparing their names' lengths (and bytes on
        // a match) costs less than hashing each name looked for (`http`
        // hashes custom header names a byte at a time); with more, the scan
        // would cost more than it saves when a trace header is there, and
        // the propagators look (the answer is then "cannot tell").
        if self.keys_len() > 8 {
            return false;
        }
        // The names' lengths as bits: most headers are told apart by their
        // length alone.
        let lengths = names.iter().fold(0u64, |m, n| {
            m | 1u64.checked_shl(n.as_str().len() as u32).unwrap_or(0)
        });
        self.keys().all(|key| {
            let key = key.as_str();
            match 1u64.checked_shl(key.len() as u32) {
                Some(bit) if lengths & bit == 0 => true,
                _ => !names.iter().any(|n| n.as_str() == key),
            }
        })
    }

    fn header(&self, name: &http::HeaderName) -> Option<&str> {
        http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }

    fn visit_header(&self, name: &http::HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) {
        for value in http::HeaderMap::get_all(self, name) {
            if !f(value.as_bytes()) {
                return;
            }
        }
    }

    fn shared_value(&self, key: &str) -> Option<http::HeaderValue> {
        let mut values = header_values(self, key).iter();
        match (values.next(), values.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    }
}

impl CarrierMut for http::HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        let Ok(value) = http::HeaderValue::try_from(value) else {
            return;
        };
        insert_header(self, key, value);
    }

    fn set_value(&mut self, key: &str, value: http::HeaderValue) {
        insert_header(self, key, value);
    }

    fn set_header(&mut self, name: &http::HeaderName, value: http::HeaderValue) {
        self.insert(name.clone(), value);
    }
}

fn insert_header(map: &mut http::HeaderMap, key: &str, value: http::HeaderValue) {
    match KNOWN.iter().find(|(k, _)| *k == key) {
        Some((_, name)) => {
            map.insert(name.clone(), value);
        }
        None => {
            if let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) {
                map.insert(name, value);
            }
        }
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
    fn header_map_visit_sees_every_value_and_stops_early() {
        let mut headers = http::HeaderMap::new();
        headers.append("baggage", "a=1".parse().unwrap());
        headers.append("baggage", http::HeaderValue::from_bytes(b"\xff").unwrap());
        headers.append("baggage", "c=3".parse().unwrap());
        headers.append("x-other", "o".parse().unwrap());
        let mut seen = Vec::new();
        Carrier::visit(&headers, "baggage", &mut |v| {
            seen.push(v.map(str::to_owned));
            true
        });
        assert_eq!(seen, [Some("a=1".to_owned()), None, Some("c=3".to_owned())]);
        let mut n = 0;
        Carrier::visit(&headers, "baggage", &mut |_| {
            n += 1;
            false
        });
        assert_eq!(n, 1);
        let mut other = Vec::new();
        Carrier::visit(&headers, "X-Other", &mut |v| {
            other.push(v.unwrap().to_owned());
            true
        });
        assert_eq!(other, ["o"]);
    }

    #[test]
    fn header_map_lacks_all_scans_small_maps_and_cannot_tell_for_large_ones() {
        let names = [
            http::HeaderName::from_static("baggage"),
            http::HeaderName::from_static("traceparent"),
        ];
        for filler in [0, 5, 7, 8, 33] {
            let mut headers = http::HeaderMap::new();
            for i in 0..filler {
                headers.insert(
                    http::HeaderName::from_bytes(format!("x-h-{i}").as_bytes()).unwrap(),
                    "v".parse().unwrap(),
                );
            }
            // Same length as `baggage`, not it.
            headers.insert("bagages", "x".parse().unwrap());
            // Up to 8 headers the map is scanned; beyond, it cannot tell.
            assert_eq!(
                Carrier::lacks_all(&headers, &names),
                filler < 8,
                "{filler} headers"
            );
            headers.append(
                "TraceParent",
                http::HeaderValue::from_bytes(b"\xff").unwrap(),
            );
            assert!(!Carrier::lacks_all(&headers, &names), "{filler} headers");
        }
        let map: HashMap<String, String> = HashMap::new();
        assert!(!Carrier::lacks_all(&map, &names), "the default cannot tell");
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
