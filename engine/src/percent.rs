//! Percent-encoding (`%XX` escapes, RFC 3986) in one place, done by the
//! `percent-encoding` and `form_urlencoded` crates: the configuration's
//! `key=value` lists, baggage values, URL query strings and paths, in the
//! engine and in the plugins that send data out on their own (Sentry).
//!
//! ```
//! use faultline_engine::percent;
//!
//! assert_eq!(percent::decode("a%20b").as_deref(), Some("a b"));
//! assert_eq!(percent::decode("100%"), None);
//! assert_eq!(percent::decode_lossy("100%"), "100%");
//! let (key, value) = percent::decode_query_pair("q=a%26b+c");
//! assert_eq!((&*key, &*value), ("q", "a&b c"));
//! assert_eq!(percent::encode_query_component("a&b c"), "a%26b%20c");
//! ```

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What a query component keeps as it is when encoded: letters, digits and
/// `-._~`, plus `*`, `[`, `]` and `@`, so that masks stay readable
/// (`j***@example.com`, `[REDACTED]`).
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'*')
    .remove(b'[')
    .remove(b']')
    .remove(b'@');

/// A path keeps its `/` too.
const PATH: &AsciiSet = &QUERY_COMPONENT.remove(b'/');

/// `text` with its escapes decoded, strictly: `None` when a `%` is not
/// followed by two hex digits or the decoded bytes are not UTF-8. Borrowed
/// when there is no escape.
pub fn decode(text: &str) -> Option<Cow<'_, str>> {
    let well_formed = text
        .split('%')
        .skip(1)
        .all(|rest| rest.len() >= 2 && rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if !well_formed {
        return None;
    }
    percent_decode_str(text).decode_utf8().ok()
}

/// `text` with its escapes decoded, leniently: a `%` without two hex digits
/// stays as written, bytes that are not UTF-8 become U+FFFD.
pub fn decode_lossy(text: &str) -> Cow<'_, str> {
    percent_decode_str(text).decode_utf8_lossy()
}

/// One `key=value` pair of a URL query (or a form), decoded as
/// `application/x-www-form-urlencoded` (`+` is a space, leniently); a pair
/// without `=` is a key with an empty value.
pub fn decode_query_pair(pair: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .unwrap_or((Cow::Borrowed(""), Cow::Borrowed("")))
}

/// A query key or value encoded so that it reads back as `text`: every
/// byte but letters, digits and `-._~*[]@` escaped (`&` as `%26`, a space as
/// `%20`).
pub fn encode_query_component(text: &str) -> Cow<'_, str> {
    utf8_percent_encode(text, QUERY_COMPONENT).into()
}

/// A URL path encoded as [`encode_query_component`] does, keeping `/`.
pub fn encode_path(text: &str) -> Cow<'_, str> {
    utf8_percent_encode(text, PATH).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding() {
        assert!(matches!(decode("plain"), Some(Cow::Borrowed("plain"))));
        assert_eq!(decode("a%3Db%2Cc").as_deref(), Some("a=b,c"));
        assert_eq!(decode("%E2%82%AC").as_deref(), Some("€"));
        for bad in ["%", "%4", "%zz", "a%4g", "%FF"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn lenient_decoding() {
        assert_eq!(decode_lossy("a%40b.com"), "a@b.com");
        assert_eq!(decode_lossy("a+b"), "a+b");
        assert_eq!(decode_lossy("100%"), "100%");
        assert_eq!(decode_lossy("%zz%4"), "%zz%4");
    }

    #[test]
    fn query_pairs() {
        let pair = |p| {
            let (k, v) = decode_query_pair(p);
            (k.into_owned(), v.into_owned())
        };
        assert_eq!(pair("a=b"), ("a".into(), "b".into()));
        assert_eq!(pair("q=a%26b+c=d"), ("q".into(), "a&b c=d".into()));
        assert_eq!(pair("flag"), ("flag".into(), "".into()));
        assert_eq!(pair(""), ("".into(), "".into()));
        assert_eq!(pair("api%5Fkey=%zz"), ("api_key".into(), "%zz".into()));
    }

    #[test]
    fn encoding_reads_back() {
        for text in [
            "a&b",
            "a b+c",
            "j***@example.com",
            "[REDACTED]",
            "é/€?#%",
            "",
        ] {
            let pair = format!("k={}", encode_query_component(text));
            assert_eq!(decode_query_pair(&pair).1, text);
            assert_eq!(decode(&encode_path(text)).as_deref(), Some(text));
        }
        assert_eq!(
            encode_query_component("j***@example.com"),
            "j***@example.com"
        );
        assert_eq!(encode_path("/users/a b"), "/users/a%20b");
    }
}
