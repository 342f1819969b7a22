//! Requests of other types than the engine's `http` 1 ones (a framework on
//! `http` 0.2, such as actix-web 4): header maps read in place as a
//! [`Carrier`] or copied at the edge, written once for any of them (the
//! request's view from its URI's parts is
//! [`RequestInfo::from_parts`](crate::request::RequestInfo::from_parts)).

use http::{HeaderMap, HeaderName, Method, Uri};

use super::{Exchange, Excluded, TracedBody};
use crate::Engine;
use crate::carrier::Carrier;

/// Any header map whose reference iterates over `(&name, &value)` pairs,
/// names as lowercase text (`AsRef<str>`, as `http`'s are) and values as
/// bytes (`AsRef<[u8]>`), as a [`Carrier`]: read in place, nothing copied
/// or converted. A value is text when it is visible ASCII (tab included),
/// as `http::HeaderValue::to_str` has it.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPairs<'a, M: ?Sized>(pub &'a M);

/// A header value's text, by the rule of `http::HeaderValue::to_str`.
fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

impl<'a, M, K, V> HeaderPairs<'a, M>
where
    M: ?Sized,
    &'a M: IntoIterator<Item = (&'a K, &'a V)>,
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<[u8]> + ?Sized + 'a,
{
    /// The values of `key`, found by comparing names (a lookup by text
    /// would make a header name, an allocation for a custom one, each time).
    fn values(&self, key: &str) -> impl Iterator<Item = &'a [u8]> {
        self.0
            .into_iter()
            .filter(move |(name, _)| (*name).as_ref() == key)
            .map(|(_, value)| value.as_ref())
    }

    fn names(&self) -> impl Iterator<Item = &'a str> {
        self.0.into_iter().map(|(name, _)| name.as_ref())
    }
}

impl<'a, M, K, V> Carrier for HeaderPairs<'a, M>
where
    M: ?Sized,
    &'a M: IntoIterator<Item = (&'a K, &'a V)>,
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<[u8]> + ?Sized + 'a,
{
    fn get(&self, key: &str) -> Option<&str> {
        self.values(key).next().and_then(text)
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        self.values(key).filter_map(text).collect()
    }

    fn count(&self, key: &str) -> usize {
        self.values(key).count()
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        for name in self.names() {
            if !keys.contains(&name) {
                keys.push(name);
            }
        }
        keys
    }

    fn visit(&self, key: &str, f: &mut dyn FnMut(Option<&str>) -> bool) {
        for value in self.values(key) {
            if !f(text(value)) {
                return;
            }
        }
    }

    fn visit_header(&self, name: &http::HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) {
        for value in self.values(name.as_str()) {
            if !f(value) {
                return;
            }
        }
    }

    fn lacks_all(&self, names: &[http::HeaderName]) -> bool {
        self.names()
            .all(|key| names.iter().all(|name| name.as_str() != key))
    }
}

/// Copies headers from one header type to another (between `http` 0.2 and
/// `http` 1, say): the same bytes, a name or value the target refuses left
/// out. `put` adds one header (`append` or `insert` of the target map).
pub fn copy_headers<K, W, N, V, T>(
    from: impl IntoIterator<Item = (K, W)>,
    mut put: impl FnMut(N, V) -> T,
) where
    K: AsRef<str>,
    W: AsRef<[u8]>,
    N: for<'b> TryFrom<&'b [u8]>,
    V: for<'b> TryFrom<&'b [u8]>,
{
    for (name, value) in from {
        let name = N::try_from(name.as_ref().as_bytes());
        if let (Ok(name), Ok(value)) = (name, V::try_from(value.as_ref())) {
            put(name, value);
        }
    }
}

/// A method of another type (`http` 0.2's) as an `http` 1 one, from its
/// text (`GET` when `http` refuses it: never for a method that was parsed).
pub fn method_of(text: &str) -> Method {
    Method::from_bytes(text.as_bytes()).unwrap_or_default()
}

/// A status code as `http` 1's or another type (`http` 0.2's), from its
/// number (the type's default, `200`, when it refuses it: never for a
/// status that was parsed).
pub fn status<T: TryFrom<u16> + Default>(code: u16) -> T {
    T::try_from(code).unwrap_or_default()
}

/// A response of another framework's types as an `http` 1 one: its
/// status code (200 when `http` refuses it), its headers copied as
/// [`copy_headers`] does, its body as it is.
pub fn http_response<K, W, B>(
    status: u16,
    headers: impl IntoIterator<Item = (K, W)>,
    body: B,
) -> http::Response<B>
where
    K: AsRef<str>,
    W: AsRef<[u8]>,
{
    let mut response = http::Response::new(body);
    *response.status_mut() = self::status(status);
    copy_headers(headers, |name: HeaderName, value| {
        response.headers_mut().append(name, value)
    });
    response
}

impl Exchange {
    /// [`finish_head`](Exchange::finish_head) for a framework whose response
    /// head is of other types (actix-web's, on `http` 0.2): its status code,
    /// its headers (copied only when
    /// [`reads_response_headers`](Exchange::reads_response_headers) says
    /// they are read), and the `traceresponse` value back as the
    /// framework's own header value `V`, with the body that ends the span.
    pub fn finish_foreign<K, W, V, B>(
        self,
        status: u16,
        headers: impl IntoIterator<Item = (K, W)>,
        body: TracedBody<B>,
    ) -> (Option<V>, TracedBody<B>)
    where
        K: AsRef<str>,
        W: AsRef<[u8]>,
        V: for<'b> TryFrom<&'b [u8]>,
        B: http_body::Body,
    {
        let mut map = HeaderMap::new();
        if self.reads_response_headers() {
            copy_headers(headers, |name: HeaderName, value| map.append(name, value));
        }
        let (ids, body) = self.finish_head(self::status(status), &map, body);
        // The framework's own value made from the written bytes: one copy.
        let value = ids.and_then(|ids| {
            let mut text = [0u8; 55];
            ids.write(&mut text);
            V::try_from(&text).ok()
        });
        (value, body)
    }
}

impl Excluded {
    /// [`into_exchange`](Excluded::into_exchange) for a request of other
    /// types: its method by its text, its URI left for the answer to set
    /// ([`Exchange::set_uri`]), converted only then.
    pub fn into_foreign_exchange(self, engine: &Engine, method: &str, matched: bool) -> Exchange {
        self.into_exchange(engine, &method_of(method), Uri::default(), matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `http` 1 map read through [`HeaderPairs`] answers as the map's own
    /// [`Carrier`] does: repeated values, values that are not text,
    /// names looked up, names missing.
    #[test]
    fn pairs_read_like_the_header_map_itself() {
        let mut map = http::HeaderMap::new();
        map.append("tracestate", "a=1".parse().unwrap());
        map.append(
            "tracestate",
            http::HeaderValue::from_bytes(b"b=\xff").unwrap(),
        );
        map.append("tracestate", "c=3".parse().unwrap());
        map.append(
            "x-custom",
            "caf\u{e9}"
                .parse()
                .unwrap_or(http::HeaderValue::from_static("x")),
        );
        map.append(
            "x-raw",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        let pairs = HeaderPairs(&map);
        for key in ["tracestate", "x-custom", "x-raw", "missing"] {
            assert_eq!(pairs.get(key), Carrier::get(&map, key), "{key}");
            assert_eq!(pairs.get_all(key), Carrier::get_all(&map, key), "{key}");
            assert_eq!(pairs.count(key), Carrier::count(&map, key), "{key}");
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            pairs.visit(key, &mut |v| {
                ours.push(v.map(str::to_owned));
                true
            });
            Carrier::visit(&map, key, &mut |v| {
                theirs.push(v.map(str::to_owned));
                true
            });
            assert_eq!(ours, theirs, "{key}");
            let name = http::HeaderName::from_static(key);
            assert_eq!(pairs.header(&name), Carrier::header(&map, &name), "{key}");
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            pairs.visit_header(&name, &mut |v| {
                ours.push(v.to_vec());
                true
            });
            Carrier::visit_header(&map, &name, &mut |v| {
                theirs.push(v.to_vec());
                true
            });
            assert_eq!(ours, theirs, "{key}");
        }
        assert_eq!(pairs.get("x-raw"), None);
        assert_eq!(pairs.count("tracestate"), 3);
        assert_eq!(pairs.keys(), ["tracestate", "x-custom", "x-raw"]);
        let mut first = 0;
        pairs.visit("tracestate", &mut |_| {
            first += 1;
            false
        });
        assert_eq!(first, 1);
    }

    #[test]
    fn pairs_tell_when_no_trace_header_is_there() {
        let mut map = http::HeaderMap::new();
        map.append("host", "example.com".parse().unwrap());
        let traceparent = http::HeaderName::from_static("traceparent");
        let names = [traceparent.clone(), http::HeaderName::from_static("b3")];
        assert!(HeaderPairs(&map).lacks_all(&names));
        map.append(traceparent, "00-x".parse().unwrap());
        assert!(!HeaderPairs(&map).lacks_all(&names));
    }

    #[test]
    fn headers_are_copied_with_their_bytes_and_refused_ones_left_out() {
        let mut from = http::HeaderMap::new();
        from.append("set-cookie", "a=1".parse().unwrap());
        from.append("set-cookie", "b=2".parse().unwrap());
        from.append("x-raw", http::HeaderValue::from_bytes(b"\xff").unwrap());
        let mut to = http::HeaderMap::new();
        copy_headers(&from, |name: http::HeaderName, value| {
            to.append(name, value)
        });
        assert_eq!(to, from);
        // A name the target refuses is left out, the rest copied.
        let mut strict: Vec<(String, http::HeaderValue)> = Vec::new();
        copy_headers(
            [("Bad Name", "v"), ("ok", "w")],
            |name: http::HeaderName, value| strict.push((name.to_string(), value)),
        );
        assert_eq!(
            strict,
            [("ok".to_owned(), http::HeaderValue::from_static("w"))]
        );
    }
}
