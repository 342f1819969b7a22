//! URL query strings masked parameter by parameter.

use std::borrow::Cow;

use super::{Masker, REDACTED};
use crate::percent;

/// Masks a URL query string (`a=1&b=2`, without the `?`) parameter by
/// parameter: the value of a secret key becomes [`REDACTED`]; every other
/// key and value is decoded (`%40` is `@`, `+` a space), masked, and
/// encoded again when masking changed it, so that what is written back
/// reads as what was masked (`q=a%26b` stays `q=a%26b`). Parameters that
/// do not change are kept as written; borrowed when none changes.
///
/// ```
/// use faultline_engine::masking::{PiiMasker, mask_query};
///
/// let m = PiiMasker::default();
/// assert_eq!(
///     mask_query(&m, "q=a%26b&email=jane%40example.com&token=abc"),
///     "q=a%26b&email=j***@example.com&token=[REDACTED]"
/// );
/// ```
pub fn mask_query<'a>(masker: &dyn Masker, query: &'a str) -> Cow<'a, str> {
    let mut out: Option<String> = None;
    let mut start = 0;
    for pair in query.split('&') {
        match (mask_pair(masker, pair), &mut out) {
            (Some(masked), out) => out
                .get_or_insert_with(|| query[..start].to_owned())
                .push_str(&masked),
            (None, Some(buf)) => buf.push_str(pair),
            (None, None) => {}
        }
        start += pair.len();
        if start < query.len() {
            if let Some(buf) = &mut out {
                buf.push('&');
            }
            start += 1;
        }
    }
    out.map_or(Cow::Borrowed(query), Cow::Owned)
}

/// One `key=value` pair (or a bare `key`) masked; `None` when unchanged.
fn mask_pair(masker: &dyn Masker, pair: &str) -> Option<String> {
    let (raw_key, raw_value) = match pair.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (pair, None),
    };
    let (key, value) = percent::decode_query_pair(pair);
    let encoded = |text: Cow<'_, str>| match text {
        Cow::Owned(masked) => Some(percent::encode_query_component(&masked).into_owned()),
        Cow::Borrowed(_) => None,
    };
    let new_key = encoded(masker.mask(&key));
    let new_value = match raw_value {
        None | Some("") => None,
        Some(raw) if masker.is_secret_key(&key) => (raw != REDACTED).then(|| REDACTED.to_owned()),
        Some(_) => encoded(masker.mask(&value)),
    };
    if new_key.is_none() && new_value.is_none() {
        return None;
    }
    let mut out = new_key.unwrap_or_else(|| raw_key.to_owned());
    if let Some(raw) = raw_value {
        out.push('=');
        out.push_str(new_value.as_deref().unwrap_or(raw));
    }
    Some(out)
}
