//! W3C Baggage: application key/values that travel with the trace.
//!
//! faultline keeps the whole list (up to 180 members and 8192 bytes, in
//! order, with properties) in the request's context, and mirrors the first
//! 64 entries into OpenTelemetry's `Baggage` for libraries that read it there.
//!
//! ```
//! use faultline_engine::propagation::baggage::Baggage;
//!
//! let b = Baggage::parse(["userId=alice,serverNode=DF%2028;region=eu, isProduction=false"]);
//! assert_eq!(b.get("serverNode"), Some("DF 28"));
//! assert_eq!(b.entries()[1].properties(), "region=eu");
//! assert_eq!(b.to_header(), "userId=alice,serverNode=DF%2028;region=eu,isProduction=false");
//! ```

use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::baggage::{BaggageExt, KeyValueMetadata};

use super::Propagator;
use crate::carrier::{Carrier, CarrierMut};

/// The `baggage` header name.
pub const BAGGAGE: &str = "baggage";
/// Most members kept.
pub const MAX_MEMBERS: usize = 180;
/// Most bytes of header read and written.
pub const MAX_BYTES: usize = 8192;
/// Entries mirrored into OpenTelemetry's `Baggage` (its own limit).
const OTEL_MIRROR: usize = 64;

/// One baggage member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageEntry {
    key: String,
    value: String,
    properties: String,
}

impl BaggageEntry {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The value, percent-decoded.
    pub fn value(&self) -> &str {
        &self.value
    }
    /// The properties as written (`p1;p2=v`), or empty.
    pub fn properties(&self) -> &str {
        &self.properties
    }
}

/// An ordered baggage list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Vec<BaggageEntry>,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// `baggage-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn percent_decode(s: &str) -> Option<String> {
    crate::percent::decode(s).map(std::borrow::Cow::into_owned)
}

/// What a value escapes: every byte that is not a `baggage-octet`, and `%`
/// (bytes past ASCII always are).
const VALUE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

fn percent_encode_into(out: &mut String, value: &str) {
    out.extend(percent_encoding::utf8_percent_encode(value, VALUE_ESCAPES));
}

fn valid_properties(props: &str) -> bool {
    props
        .split(';')
        .map(trim_ows)
        .all(|p| match p.split_once('=') {
            None => is_token(p),
            Some((k, v)) => is_token(trim_ows(k)) && trim_ows(v).bytes().all(is_baggage_octet),
        })
}

impl Baggage {
    /// An empty list.
    pub fn new() -> Self {
        Baggage::default()
    }

    /// Parses every `baggage` header value, in order. Invalid members are
    /// dropped one by one; a later member with the same key replaces an
    /// earlier one; only the first [`MAX_BYTES`] bytes are read and at most
    /// [`MAX_MEMBERS`] members kept.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Baggage {
        let mut parser = BaggageParser::new();
        for value in values {
            if !parser.feed(value) {
                break;
            }
        }
        parser.baggage
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[BaggageEntry] {
        &self.entries
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value` (kept in place if present, appended otherwise).
    /// Returns false, changing nothing, when the key is not a token or the
    /// list is full.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if !is_token(key) {
            return false;
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.value = value.to_owned();
            return true;
        }
        if self.entries.len() >= MAX_MEMBERS {
            return false;
        }
        self.entries.push(BaggageEntry {
            key: key.to_owned(),
            value: value.to_owned(),
            properties: String::new(),
        });
        true
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|e| e.key != key);
    }

    /// The header value: values percent-encoded; members that would take it
    /// past [`MAX_BYTES`] are left out whole.
    pub fn to_header(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let mut member =
                String::with_capacity(e.key.len() + e.value.len() + 1 + e.properties.len());
            member.push_str(&e.key);
            member.push('=');
            percent_encode_into(&mut member, &e.value);
            if !e.properties.is_empty() {
                member.push(';');
                member.push_str(&e.properties);
            }
            let extra = member.len() + usize::from(!out.is_empty());
            if out.len() + extra > MAX_BYTES {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&member);
        }
        out
    }
}

/// Reads `baggage` header values one at a time.
struct BaggageParser {
    baggage: Baggage,
    budget: usize,
}

impl BaggageParser {
    fn new() -> Self {
        BaggageParser {
            baggage: Baggage::default(),
            budget: MAX_BYTES,
        }
    }

    /// Reads one header value; false once a limit is reached.
    fn feed(&mut self, value: &str) -> bool {
        for member in value.split(',') {
            if member.len() + 1 > self.budget {
                self.budget = 0;
                return false;
            }
            self.budget -= member.len() + 1;
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            let (pair, props) = match member.split_once(';') {
                Some((pair, props)) => (pair, trim_ows(props)),
                None => (member, ""),
            };
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let (key, value) = (trim_ows(key), trim_ows(value));
            if !is_token(key) || !value.bytes().all(is_baggage_octet) {
                continue;
            }
            if !props.is_empty() && !valid_properties(props) {
                continue;
            }
            let Some(value) = percent_decode(value) else {
                continue;
            };
            let entry = BaggageEntry {
                key: key.to_owned(),
                value,
                properties: props.to_owned(),
            };
            let entries = &mut self.baggage.entries;
            if let Some(existing) = entries.iter_mut().find(|e| e.key == entry.key) {
                *existing = entry;
            } else if entries.len() < MAX_MEMBERS {
                entries.push(entry);
            } else {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
struct ContextBaggage(Arc<Baggage>);

/// The baggage of `cx`, as faultline keeps it.
pub fn baggage(cx: &Context) -> Option<&Baggage> {
    cx.get::<ContextBaggage>().map(|b| b.0.as_ref())
}

/// `cx` with `baggage` (also mirrored into OpenTelemetry's baggage).
pub fn with_baggage(cx: &Context, baggage: Baggage) -> Context {
    let mirror: Vec<KeyValueMetadata> = baggage
        .entries
        .iter()
        .take(OTEL_MIRROR)
        .map(|e| KeyValueMetadata::new(e.key.clone(), e.value.clone(), e.properties.clone()))
        .collect();
    cx.with_value(ContextBaggage(Arc::new(baggage)))
        .with_baggage(mirror)
}

/// The W3C Baggage propagator.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaggagePropagator;

impl BaggagePropagator {
    /// A new propagator.
    pub fn new() -> Self {
        BaggagePropagator
    }
}

impl Propagator for BaggagePropagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        let mut parser = BaggageParser::new();
        // A value that is not UTF-8 is skipped; the others still count.
        carrier.visit(BAGGAGE, &mut |value| value.is_none_or(|v| parser.feed(v)));
        if parser.baggage.is_empty() {
            return cx.clone();
        }
        with_baggage(cx, parser.baggage)
    }

    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        let ours = baggage(cx);
        let otel = cx.baggage();
        // Entries set through OpenTelemetry's API join faultline's list.
        let mut merged: Option<Baggage> = None;
        for (key, (value, _meta)) in otel.iter() {
            let value = value.as_str();
            if ours.and_then(|b| b.get(key.as_str())) == Some(value) {
                continue;
            }
            let list = merged.get_or_insert_with(|| ours.cloned().unwrap_or_default());
            list.insert(key.as_str(), value);
        }
        let header = match (&merged, ours) {
            (Some(m), _) => m.to_header(),
            (None, Some(b)) => b.to_header(),
            (None, None) => return,
        };
        if !header.is_empty() {
            carrier.set(BAGGAGE, header);
        }
    }

    fn fields(&self) -> Vec<String> {
        vec![BAGGAGE.to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parses_members_properties_and_encoding() {
        let b = Baggage::parse([
            "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
        ]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.get("key2"), Some("value2"));
        assert_eq!(b.entries()[0].properties(), "property1;property2");
        assert_eq!(b.entries()[2].properties(), "propertyKey=propertyValue");
        let b = Baggage::parse(["k=%E2%9C%93%20ok"]);
        assert_eq!(b.get("k"), Some("✓ ok"));
        assert_eq!(b.to_header(), "k=%E2%9C%93%20ok");
    }

    #[test]
    fn invalid_members_are_dropped_one_by_one() {
        let b = Baggage::parse(["good=1,bad key=2,=3,novalue,x=a b,y=%zz,z=%FF,ok=2,p=1;bad prop"]);
        assert_eq!(
            b.entries().iter().map(|e| e.key()).collect::<Vec<_>>(),
            ["good", "ok"]
        );
    }

    #[test]
    fn later_duplicate_wins_and_limits_hold() {
        let b = Baggage::parse(["a=1,b=2", "a=3"]);
        assert_eq!(b.get("a"), Some("3"));
        assert_eq!(b.len(), 2);

        let many: String = (0..200)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let b = Baggage::parse([many.as_str()]);
        assert_eq!(b.len(), MAX_MEMBERS);
        assert_eq!(b.entries()[179].key(), "k179");

        let big = format!("a={},b=1", "x".repeat(9000));
        let b = Baggage::parse([big.as_str()]);
        assert!(b.is_empty(), "a member past the byte budget is not read");
        let fits = format!("a={}", "x".repeat(8000));
        let b = Baggage::parse([fits.as_str(), "b=1"]);
        assert_eq!(b.len(), 2);
        assert!(b.to_header().len() <= MAX_BYTES);
    }

    #[test]
    fn header_respects_the_byte_limit() {
        let mut b = Baggage::new();
        for i in 0..10 {
            assert!(b.insert(&format!("k{i}"), &"v".repeat(1000)));
        }
        assert!(!b.insert("bad key", "x"));
        let h = b.to_header();
        assert!(h.len() <= MAX_BYTES);
        assert_eq!(h.split(',').count(), 8);
        b.remove("k0");
        assert_eq!(b.len(), 9);
    }

    #[test]
    fn propagator_round_trip_and_otel_mirror() {
        let mut incoming: HashMap<String, String> = HashMap::new();
        incoming.insert(
            "baggage".into(),
            "tenant=acme,user=bob%40example.com;pii".into(),
        );
        let cx = BaggagePropagator.extract(&incoming, &Context::new());
        assert_eq!(baggage(&cx).unwrap().get("user"), Some("bob@example.com"));
        assert_eq!(
            cx.baggage().get("tenant").map(|v| v.as_str().to_string()),
            Some("acme".to_owned())
        );

        let cx = cx.with_baggage(vec![KeyValueMetadata::new("added", "by otel api", "")]);
        let mut out: HashMap<String, String> = HashMap::new();
        BaggagePropagator.inject(&cx, &mut out);
        let header = &out["baggage"];
        assert!(
            header.starts_with("tenant=acme,user=bob@example.com;pii"),
            "{header}"
        );
        assert!(header.contains("added=by%20otel%20api"), "{header}");

        let mut out: HashMap<String, String> = HashMap::new();
        BaggagePropagator.inject(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
