//! W3C Trace Context (Level 2): `traceparent` and `tracestate`, read
//! strictly and written exactly.
//!
//! ```
//! use faultline_engine::propagation::w3c::TraceParent;
//!
//! let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! assert!(tp.flags.is_sampled());
//! assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err());
//! ```

use std::fmt;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::Propagator;
use crate::carrier::{Carrier, CarrierMut};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";
/// The `traceresponse` header name (Trace Context Level 2).
pub const TRACERESPONSE: &str = "traceresponse";

static TRACEPARENT_NAME: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
static TRACESTATE_NAME: http::HeaderName = http::HeaderName::from_static(TRACESTATE);

/// Flags this version of the specification defines: sampled (`01`) and random (`02`).
const KNOWN_FLAGS: u8 = 0x03;
/// The random flag (Level 2): the trace id's rightmost 7 bytes are random.
pub const FLAG_RANDOM: u8 = 0x02;

/// Most list members a `tracestate` may have.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Longest `tracestate` faultline writes; longer ones are truncated as the
/// specification says (members over 128 characters first, then from the end).
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Longest header value faultline looks at (anything longer is refused
/// unread, so a hostile header costs nothing).
pub const MAX_HEADER_LEN: usize = 8192;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceParent {
    /// The version (`00`, or a higher one read by the forward-compatibility rules).
    pub version: u8,
    /// The trace id (never all zeros).
    pub trace_id: TraceId,
    /// The caller's span id (never all zeros).
    pub parent_id: SpanId,
    /// The flags, limited to the ones this version defines (sampled, random).
    pub flags: TraceFlags,
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceParentError {
    /// Shorter than 55 bytes, longer than [`MAX_HEADER_LEN`], or (version 00)
    /// not exactly 55 bytes.
    #[error("traceparent has a wrong length ({0} bytes)")]
    Length(usize),
    /// The version is not two lowercase hex digits.
    #[error("traceparent version is not two lowercase hex digits")]
    Version,
    /// Version `ff` is forbidden.
    #[error("traceparent version ff is forbidden")]
    ForbiddenVersion,
    /// A `-` is missing between fields.
    #[error("traceparent fields are not separated by '-'")]
    Separator,
    /// The trace id is not 32 lowercase hex digits.
    #[error("traceparent trace-id is not 32 lowercase hex digits")]
    TraceId,
    /// The trace id is all zeros.
    #[error("traceparent trace-id is all zeros")]
    ZeroTraceId,
    /// The parent id is not 16 lowercase hex digits.
    #[error("traceparent parent-id is not 16 lowercase hex digits")]
    ParentId,
    /// The parent id is all zeros.
    #[error("traceparent parent-id is all zeros")]
    ZeroParentId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent trace-flags are not two lowercase hex digits")]
    Flags,
    /// A higher version carries more data, but not after a `-`.
    #[error("traceparent has data after trace-flags that does not start with '-'")]
    Trailing,
}

/// Lowercase hex digit values; 0xff marks anything else.
static HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[inline]
fn hex_u8(b: &[u8]) -> Option<u8> {
    let (hi, lo) = (HEX[b[0] as usize], HEX[b[1] as usize]);
    if (hi | lo) & 0xf0 != 0 {
        return None;
    }
    Some(hi << 4 | lo)
}

/// Each byte's two lowercase hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// Sixteen lowercase hex digits as a number, eight at a time in one
/// 64-bit word (no table lookups, no branches per digit).
#[inline]
fn hex_u64(b: &[u8]) -> Option<u64> {
    let (hi, lo) = b.split_at_checked(8)?;
    if lo.len() != 8 {
        return None;
    }
    Some(u64::from(hex8(hi)?) << 32 | u64::from(hex8(lo)?))
}

/// Eight lowercase hex digits (`0-9a-f`, nothing else) as a number.
#[inline]
fn hex8(b: &[u8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_be_bytes(b.try_into().ok()?);
    if x & HIGH != 0 {
        return None;
    }
    // Per byte (each below 0x80, so no carry between bytes): the high bit
    // of `b + (0x80 - c)` is set exactly when `b >= c`.
    let at_least = |c: u8| x.wrapping_add(ONES * u64::from(0x80 - c)) & HIGH;
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if digit | letter != HIGH {
        return None;
    }
    // '0'..'9' -> low nibble; 'a'..'f' -> low nibble + 9. Then the eight
    // nibbles are packed, first digit most significant.
    let v = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    let v = ((v >> 4) | v) & 0x00ff_00ff_00ff_00ff;
    let v = ((v >> 8) | v) & 0x0000_ffff_0000_ffff;
    let v = ((v >> 16) | v) & 0x0000_0000_ffff_ffff;
    Some(v as u32)
}

#[inline]
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl TraceParent {
    /// Parses a `traceparent` value (leading and trailing spaces and tabs
    /// are allowed). Never panics.
    pub fn parse(value: &str) -> Result<TraceParent, TraceParentError> {
        if value.len() > MAX_HEADER_LEN {
            return Err(TraceParentError::Length(value.len()));
        }
        let b = value.trim_matches(is_ows).as_bytes();
        if b.len() < 55 {
            return Err(TraceParentError::Length(b.len()));
        }
        let version = hex_u8(&b[0..2]).ok_or(TraceParentError::Version)?;
        if version == 0xff {
            return Err(TraceParentError::ForbiddenVersion);
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(TraceParentError::Separator);
        }
        let hi = hex_u64(&b[3..19]).ok_or(TraceParentError::TraceId)?;
        let lo = hex_u64(&b[19..35]).ok_or(TraceParentError::TraceId)?;
        if hi == 0 && lo == 0 {
            return Err(TraceParentError::ZeroTraceId);
        }
        let parent = hex_u64(&b[36..52]).ok_or(TraceParentError::ParentId)?;
        if parent == 0 {
            return Err(TraceParentError::ZeroParentId);
        }
        let flags = hex_u8(&b[53..55]).ok_or(TraceParentError::Flags)?;
        if b.len() > 55 {
            if version == 0 {
                return Err(TraceParentError::Length(b.len()));
            }
            if b[55] != b'-' {
                return Err(TraceParentError::Trailing);
            }
        }
        Ok(TraceParent {
            version,
            trace_id: TraceId::from(u128::from(hi) << 64 | u128::from(lo)),
            parent_id: SpanId::from(parent),
            flags: TraceFlags::new(flags & KNOWN_FLAGS),
        })
    }

    /// The `traceparent` of a span context (version 00).
    pub fn from_span_context(sc: &SpanContext) -> TraceParent {
        TraceParent {
            version: 0,
            trace_id: sc.trace_id(),
            parent_id: sc.span_id(),
            flags: TraceFlags::new(sc.trace_flags().to_u8() & KNOWN_FLAGS),
        }
    }

    /// Writes the value (always version 00) into a 55-byte buffer.
    pub fn write(&self, out: &mut [u8; 55]) {
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        for (i, byte) in self.trace_id.to_bytes().into_iter().enumerate() {
            out[3 + 2 * i..5 + 2 * i].copy_from_slice(&HEX_PAIRS[byte as usize]);
        }
        out[35] = b'-';
        for (i, byte) in self.parent_id.to_bytes().into_iter().enumerate() {
            out[36 + 2 * i..38 + 2 * i].copy_from_slice(&HEX_PAIRS[byte as usize]);
        }
        out[52] = b'-';
        // Only the known flags (`00` to `03`) are written.
        out[53] = b'0';
        out[54] = b'0' + (self.flags.to_u8() & KNOWN_FLAGS);
    }

    /// The value as a header value (version 00), written in place.
    pub fn to_header_value(&self) -> http::HeaderValue {
        let mut buf = [0u8; 55];
        self.write(&mut buf);
        let bytes = bytes::Bytes::copy_from_slice(&buf);
        // The one `unsafe` of the engine: checking the 55 bytes again cost
        // as much as writing them (a sixth of an inject), and they are
        // known to be valid.
        #[allow(unsafe_code)]
        // SAFETY: `write` fills every byte of `buf` with an ASCII hex digit
        // or '-' (all visible ASCII, as a header value requires); debug
        // builds check it again inside `http`, and the property test
        // `written_traceparent_is_the_ids_in_lowercase_hex` covers every
        // id and flag value.
        unsafe {
            http::HeaderValue::from_maybe_shared_unchecked(bytes)
        }
    }

    /// The value as a `String` (version 00).
    pub fn to_header(&self) -> String {
        let mut buf = [0u8; 55];
        self.write(&mut buf);
        // Only ASCII digits, letters and '-' were written.
        std::str::from_utf8(&buf)
            .map(str::to_owned)
            .unwrap_or_default()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

/// Why a `tracestate` was discarded (as a whole, as the specification asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceStateError {
    /// A list member is not `key=value`.
    #[error("tracestate member {0} is not key=value")]
    Member(usize),
    /// A key breaks the key grammar.
    #[error("tracestate member {0} has an invalid key")]
    Key(usize),
    /// A value breaks the value grammar.
    #[error("tracestate member {0} has an invalid value")]
    Value(usize),
    /// More than 32 list members.
    #[error("tracestate has more than 32 list members")]
    TooManyMembers,
    /// The header is unreasonably long.
    #[error("tracestate is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
}

/// A validated `tracestate`: list members in order, duplicates removed
/// (the first one of a key is kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceStateList {
    members: Vec<(String, String)>,
}

/// Whether `key` follows the `tracestate` key grammar:
/// `[a-z0-9][a-z0-9_\-*/@]{0,255}`.
pub fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 256 {
        return false;
    }
    if !(b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) {
        return false;
    }
    b[1..].iter().all(|&c| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
    })
}

/// Whether `value` follows the `tracestate` value grammar: 1 to 256
/// printable ASCII characters other than `,` and `=`, not ending in a space.
pub fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty() || b.len() > 256 || b[b.len() - 1] == b' ' {
        return false;
    }
    b.iter()
        .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

/// Whether the OpenTelemetry API's `TraceState` accepts `key` (its rule is
/// the older multi-tenant one: at most one `@`, followed by an alphanumeric
/// and at most 13 more characters).
fn otel_accepts_key(key: &str) -> bool {
    match key.split_once('@') {
        None => true,
        Some((tenant, system)) => {
            !tenant.is_empty()
                && !system.is_empty()
                && !system.contains('@')
                && system.len() <= 14
                && system.as_bytes()[0].is_ascii_alphanumeric()
        }
    }
}

impl TraceStateList {
    /// Parses every `tracestate` header value, in order, as one list.
    /// Empty members and spaces or tabs around members are allowed; anything
    /// else malformed discards the whole list.
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<TraceStateList, TraceStateError> {
        let mut parser = TraceStateParser::default();
        for value in values {
            if !parser.feed(value) {
                break;
            }
        }
        Ok(TraceStateList::from_normalized(&parser.finish()?))
    }

    /// The members of a header the parser already normalized.
    fn from_normalized(header: &str) -> TraceStateList {
        TraceStateList {
            members: header
                .split(',')
                .filter_map(|m| m.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The members, in order.
    pub fn members(&self) -> &[(String, String)] {
        &self.members
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Sets `key` to `value` and moves it to the front, as the specification
    /// asks of a vendor updating its own member. Invalid input is refused.
    pub fn upsert(&mut self, key: &str, value: &str) -> Result<(), TraceStateError> {
        if !valid_tracestate_key(key) {
            return Err(TraceStateError::Key(1));
        }
        if !valid_tracestate_value(value) {
            return Err(TraceStateError::Value(1));
        }
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        self.members.truncate(MAX_TRACESTATE_MEMBERS);
        Ok(())
    }

    /// The members OpenTelemetry's `TraceState` can hold, as one (for code
    /// that wants the list on a span context).
    pub fn to_otel(&self) -> TraceState {
        let accepted = self.members.iter().filter(|(k, _)| otel_accepts_key(k));
        TraceState::from_key_value(accepted.map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap_or_default()
    }

    /// The header value, truncated to [`MAX_TRACESTATE_LEN`] as the
    /// specification says: members longer than 128 characters go first,
    /// then members from the end.
    pub fn to_header(&self) -> String {
        let len = |m: &(String, String)| m.0.len() + 1 + m.1.len();
        let mut keep: Vec<&(String, String)> =
            self.members.iter().take(MAX_TRACESTATE_MEMBERS).collect();
        let total = |keep: &[&(String, String)]| {
            keep.iter().map(|m| len(m)).sum::<usize>() + keep.len().saturating_sub(1)
        };
        while total(&keep) > MAX_TRACESTATE_LEN {
            match keep.iter().rposition(|m| len(m) > 128) {
                Some(i) => {
                    keep.remove(i);
                }
                None => {
                    keep.pop();
                }
            }
        }
        let mut out = String::with_capacity(total(&keep));
        for (i, (k, v)) in keep.iter().map(|m| (&m.0, &m.1)).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

/// Character classes of `tracestate` bytes.
const KEY_FIRST: u8 = 1;
const KEY: u8 = 2;
const VALUE: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0x20;
    while c <= 0x7e {
        if c != b',' as usize && c != b'=' as usize {
            t[c] |= VALUE;
        }
        c += 1;
    }
    let mut c = b'a' as usize;
    while c <= b'z' as usize {
        t[c] |= KEY_FIRST | KEY;
        c += 1;
    }
    let mut c = b'0' as usize;
    while c <= b'9' as usize {
        t[c] |= KEY_FIRST | KEY;
        c += 1;
    }
    t[b'_' as usize] |= KEY;
    t[b'-' as usize] |= KEY;
    t[b'*' as usize] |= KEY;
    t[b'/' as usize] |= KEY;
    t[b'@' as usize] |= KEY;
    t
};

/// Whether one `tracestate` value is valid and already exactly what the
/// parser would make of it: members joined by bare commas, no spaces or
/// empty members around them, no duplicate keys, within the limits. Such a
/// value is passed on as it arrived.
fn is_normalized_tracestate(value: &str) -> bool {
    let b = value.as_bytes();
    let n = b.len();
    if n == 0 || n > MAX_HEADER_LEN {
        return false;
    }
    let mut keys = [(0u16, 0u16); MAX_TRACESTATE_MEMBERS];
    let mut members = 0;
    let mut i = 0;
    loop {
        if members == MAX_TRACESTATE_MEMBERS || CLASS[b[i] as usize] & KEY_FIRST == 0 {
            return false;
        }
        let key_start = i;
        i += 1;
        while i < n && CLASS[b[i] as usize] & KEY == KEY {
            i += 1;
        }
        if i == n || b[i] != b'=' || i - key_start > 256 {
            return false;
        }
        let key = &b[key_start..i];
        if keys[..members]
            .iter()
            .any(|&(a, z)| &b[a as usize..z as usize] == key)
        {
            return false;
        }
        // MAX_HEADER_LEN keeps every offset within u16.
        keys[members] = (key_start as u16, i as u16);
        members += 1;
        i += 1;
        let value_start = i;
        while i < n && CLASS[b[i] as usize] & VALUE != 0 {
            i += 1;
        }
        if i == value_start || i - value_start > 256 || b[i - 1] == b' ' {
            return false;
        }
        if i == n {
            return true;
        }
        // The next byte is a comma (anything else is not a value byte and
        // not normalized), and a member follows at once.
        if b[i] != b',' || i + 1 == n {
            return false;
        }
        i += 1;
    }
}

/// Validates `tracestate` header values one at a time and writes the
/// normalized list (no spaces, no empty members, no duplicates) into one
/// string: one allocation for the whole header.
#[derive(Debug, Default)]
struct TraceStateParser {
    out: String,
    /// Where each key sits in `out`, to spot duplicates (on the stack).
    keys: [(u16, u16); MAX_TRACESTATE_MEMBERS],
    members: usize,
    index: usize,
    total: usize,
    error: Option<TraceStateError>,
}

impl TraceStateParser {
    /// Reads one header value; false once the list is known to be invalid.
    /// One pass over the bytes, with table lookups.
    fn feed(&mut self, value: &str) -> bool {
        if self.error.is_some() {
            return false;
        }
        self.total += value.len();
        if self.total > MAX_HEADER_LEN {
            self.error = Some(TraceStateError::TooLong);
            return false;
        }
        if self.out.capacity() == 0 {
            self.out.reserve(value.len());
        }
        let b = value.as_bytes();
        let n = b.len();
        let mut i = 0;
        loop {
            // Spaces, tabs and commas between members (empty members are allowed).
            while i < n && matches!(b[i], b' ' | b'\t' | b',') {
                i += 1;
            }
            if i == n {
                return true;
            }
            self.index += 1;
            let index = self.index;
            let key_start = i;
            if CLASS[b[i] as usize] & KEY_FIRST == 0 {
                self.error = Some(TraceStateError::Key(index));
                return false;
            }
            i += 1;
            while i < n && CLASS[b[i] as usize] & KEY == KEY {
                i += 1;
            }
            let key_end = i;
            if i == n || b[i] != b'=' {
                // A key cut by the end, a space or a comma: no `=value`.
                let reason = if i == n || b[i] == b',' {
                    TraceStateError::Member(index)
                } else {
                    TraceStateError::Key(index)
                };
                self.error = Some(reason);
                return false;
            }
            if key_end - key_start > 256 {
                self.error = Some(TraceStateError::Key(index));
                return false;
            }
            i += 1;
            let value_start = i;
            while i < n && b[i] != b',' {
                i += 1;
            }
            let mut value_end = i;
            while value_end > value_start && matches!(b[value_end - 1], b' ' | b'\t') {
                value_end -= 1;
            }
            let val = &b[value_start..value_end];
            if val.is_empty()
                || val.len() > 256
                || !val.iter().all(|&c| CLASS[c as usize] & VALUE != 0)
            {
                self.error = Some(TraceStateError::Value(index));
                return false;
            }
            let key = &value[key_start..key_end];
            let out = &self.out;
            if self.keys[..self.members]
                .iter()
                .any(|&(a, z)| &out[a as usize..z as usize] == key)
            {
                continue; // a duplicate: keep the first
            }
            if self.members == MAX_TRACESTATE_MEMBERS {
                self.error = Some(TraceStateError::TooManyMembers);
                return false;
            }
            if !self.out.is_empty() {
                self.out.push(',');
            }
            // MAX_HEADER_LEN keeps every offset within u16.
            let start = self.out.len() as u16;
            self.out.push_str(key);
            let end = self.out.len() as u16;
            self.keys[self.members] = (start, end);
            self.members += 1;
            self.out.push('=');
            self.out.push_str(&value[value_start..value_end]);
        }
    }

    /// Marks the list invalid (a value that is not UTF-8).
    fn fail(&mut self) {
        self.index += 1;
        self.error
            .get_or_insert(TraceStateError::Member(self.index));
    }

    /// The normalized header (empty when there were no members).
    fn finish(self) -> Result<String, TraceStateError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

/// What the incoming trace context held beyond the span context, kept in
/// the request's context (one entry: one lookup on inject): the random
/// flag, which the SDK resets on spans it does not sample, and the
/// `tracestate`, whose members OpenTelemetry's `TraceState` would copy one
/// by one (and some valid keys of which it refuses).
#[derive(Debug, Clone)]
struct Incoming {
    trace_id: TraceId,
    random: bool,
    /// Validated and normalized (visible ASCII): passed on without a copy.
    tracestate: Option<http::HeaderValue>,
}

impl Incoming {
    fn tracestate_text(&self) -> Option<&str> {
        self.tracestate.as_ref().and_then(|h| h.to_str().ok())
    }
}

/// The `tracestate` of `cx` (the one that arrived with the request, with
/// the members set through [`set_tracestate_member`]), as a list.
pub fn incoming_tracestate(cx: &Context) -> Option<TraceStateList> {
    cx.get::<Incoming>()
        .and_then(Incoming::tracestate_text)
        .map(TraceStateList::from_normalized)
}

/// The `tracestate` of `cx` as its header value (validated, normalized).
pub fn tracestate_header(cx: &Context) -> Option<&str> {
    cx.get::<Incoming>().and_then(Incoming::tracestate_text)
}

/// `cx` with the vendor member `key` set to `value` and moved to the front
/// of the `tracestate` that outgoing calls carry, as the specification asks
/// of a vendor updating its own member.
pub fn set_tracestate_member(
    cx: &Context,
    key: &str,
    value: &str,
) -> Result<Context, TraceStateError> {
    let trace_id = cx.span().span_context().trace_id();
    let mut list = incoming_tracestate(cx).unwrap_or_default();
    list.upsert(key, value)?;
    let random = cx
        .get::<Incoming>()
        .is_some_and(|i| i.random && i.trace_id == trace_id);
    match http::HeaderValue::try_from(list.to_header()) {
        Ok(header) => Ok(cx.with_value(Incoming {
            trace_id,
            random,
            tracestate: Some(header),
        })),
        // Validated members are visible ASCII: not reached.
        Err(_) => Ok(cx.clone()),
    }
}

/// What a request's W3C headers carry, validated: the `traceparent` and
/// the normalized `tracestate` (absent when missing or invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingHeaders {
    /// The parent.
    pub traceparent: TraceParent,
    /// The list, normalized: the header as it arrived when it already was.
    pub tracestate: Option<http::HeaderValue>,
}

/// Reads and validates the `traceparent` and `tracestate` of `carrier`, as
/// [`TraceContextPropagator`] does before it builds a context: `None` when
/// there is no single valid `traceparent` (a new trace starts); an invalid
/// `tracestate` is dropped while the `traceparent` is kept. Never panics.
pub fn parse_headers(carrier: &dyn Carrier) -> Option<IncomingHeaders> {
    // Exactly one traceparent, valid: anything else starts a new trace.
    let mut seen = 0;
    let mut parsed = None;
    carrier.visit(TRACEPARENT, &mut |value| {
        seen += 1;
        parsed = if seen == 1 {
            value.and_then(|v| TraceParent::parse(v).ok())
        } else {
            None
        };
        seen == 1
    });
    let tp = parsed?;
    let tracestate = match carrier.shared_value(TRACESTATE) {
        // One header, already valid and normalized (the usual case):
        // kept as it arrived, without a copy.
        Some(value) if value.to_str().is_ok_and(is_normalized_tracestate) => Some(value),
        // Anything else (absent, repeated, to be rewritten): parsed.
        _ => {
            let mut parser = TraceStateParser::default();
            let mut any_state = false;
            carrier.visit(TRACESTATE, &mut |value| {
                any_state = true;
                match value {
                    Some(v) => parser.feed(v),
                    None => {
                        parser.fail();
                        false
                    }
                }
            });
            if any_state {
                parser
                    .finish()
                    .ok()
                    .filter(|h| !h.is_empty())
                    .and_then(|h| http::HeaderValue::try_from(h).ok())
            } else {
                None
            }
        }
    };
    Some(IncomingHeaders {
        traceparent: tp,
        tracestate,
    })
}

/// The W3C Trace Context propagator: `traceparent` and `tracestate`,
/// validated strictly. An invalid or repeated `traceparent` is ignored (a new
/// trace starts) and takes the `tracestate` with it; an invalid `tracestate`
/// is dropped as a whole while the `traceparent` is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextPropagator;

impl TraceContextPropagator {
    /// A new propagator.
    pub fn new() -> Self {
        TraceContextPropagator
    }
}

impl Propagator for TraceContextPropagator {
    fn extract(&self, carrier: &dyn Carrier, cx: &Context) -> Context {
        let Some(incoming) = parse_headers(carrier) else {
            return cx.clone();
        };
        let tp = incoming.traceparent;
        // The list travels in the context, not in the span context: OpenTelemetry's
        // `TraceState` would copy every member again and refuses some valid keys.
        let sc = SpanContext::new(tp.trace_id, tp.parent_id, tp.flags, true, TraceState::NONE);
        let cx = cx.with_remote_span_context(sc);
        let random = tp.flags.to_u8() & FLAG_RANDOM != 0;
        if !random && incoming.tracestate.is_none() {
            return cx;
        }
        cx.with_value(Incoming {
            trace_id: tp.trace_id,
            random,
            tracestate: incoming.tracestate,
        })
    }

    fn inject(&self, cx: &Context, carrier: &mut dyn CarrierMut) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let mut tp = TraceParent::from_span_context(sc);
        let incoming = cx.get::<Incoming>().filter(|i| i.trace_id == sc.trace_id());
        if incoming.is_some_and(|i| i.random) {
            tp.flags = TraceFlags::new(tp.flags.to_u8() | FLAG_RANDOM);
        }
        carrier.set_header(&TRACEPARENT_NAME, tp.to_header_value());

        // Members set on the span context through OpenTelemetry's API come
        // first; then the list that travels in the context.
        let own = if *sc.trace_state() == TraceState::NONE {
            String::new()
        } else {
            sc.trace_state().header()
        };
        let incoming = incoming.and_then(|i| i.tracestate.as_ref());
        let header = match (incoming, own.is_empty()) {
            (Some(inc), true) => {
                carrier.set_header(&TRACESTATE_NAME, inc.clone());
                return;
            }
            (Some(inc), false) => {
                let mut merged = TraceStateList::from_normalized(inc.to_str().unwrap_or_default());
                let own_members = TraceStateList::parse([own.as_str()]).unwrap_or_default();
                for (k, v) in own_members.members().iter().rev() {
                    let _ = merged.upsert(k, v);
                }
                merged.to_header()
            }
            (None, false) => TraceStateList::parse([own.as_str()])
                .map(|l| l.to_header())
                .unwrap_or_default(),
            (None, true) => return,
        };
        if !header.is_empty() {
            carrier.set(TRACESTATE, header);
        }
    }

    fn fields(&self) -> Vec<String> {
        vec![TRACEPARENT.to_owned(), TRACESTATE.to_owned()]
    }
}

/// The `traceresponse` header value for a span (Trace Context Level 2):
/// `00-{trace-id}-{span-id}-{flags}` of the server span.
pub fn traceresponse(sc: &SpanContext) -> Option<String> {
    sc.is_valid()
        .then(|| TraceParent::from_span_context(sc).to_header())
}

#[cfg(test)]
mod tests;
