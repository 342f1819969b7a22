//! The one pass over a text that finds and masks personal data and secrets.
//!
//! The scan jumps from one *trigger byte* to the next: an ASCII digit, `:`,
//! `=` or `@` (the bytes 0x30..=0x40, found eight at a time). Everything
//! between triggers is copied as it is, and only when something before it
//! changed; a text with nothing to mask is never copied.
//!
//! * A digit starts a *digit sequence*: groups of digits joined by single
//!   spaces, dashes, dots or parentheses. Its groups are matched against the
//!   shapes of cards, phone numbers, SSNs and EINs. Digits joined to letters
//!   (`a1b2`, UUIDs, hashes, `v1`), after a decimal point (`0.4111…`) or a
//!   thousands separator (`1,234`) never start one.
//! * `@` (or its encoding `%40`) is checked for an email address around it,
//!   or a password in a URL (`scheme://user:password@host`).
//! * `=` and `:` are checked for a secret key before them (`password=…`,
//!   `"token": "…"`, `Authorization: Bearer …`); its value is redacted.

use std::borrow::Cow;

use super::REDACTED;
use super::hash::Hasher;
use super::keys::SecretKeys;
use super::numbers;

/// The built-in detectors with the settings of one masker.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) keys: SecretKeys,
    pub(crate) hasher: Option<Hasher>,
}

/// What a masked item was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Card,
    Ssn,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::Ssn => "ssn",
        }
    }
}

/// The text being masked and, once something changed, its masked copy.
struct Out<'t> {
    text: &'t str,
    buf: String,
    /// Bytes of `text` before this index are already in `buf` (or replaced).
    emitted: usize,
    changed: bool,
}

impl<'t> Out<'t> {
    fn new(text: &'t str) -> Self {
        Out {
            text,
            buf: String::new(),
            emitted: 0,
            changed: false,
        }
    }

    /// Copies the text up to `start` and returns the buffer, to which the
    /// caller appends the replacement before calling [`end`](Self::end).
    fn begin(&mut self, start: usize) -> &mut String {
        debug_assert!(start >= self.emitted);
        if !self.changed {
            self.changed = true;
            self.buf.reserve(self.text.len() + 16);
        }
        self.buf.push_str(&self.text[self.emitted..start]);
        &mut self.buf
    }

    fn end(&mut self, end: usize) {
        self.emitted = end;
    }

    fn replace(&mut self, start: usize, end: usize, with: &str) {
        self.begin(start).push_str(with);
        self.end(end);
    }

    fn finish(self) -> Cow<'t, str> {
        if !self.changed {
            return Cow::Borrowed(self.text);
        }
        let mut buf = self.buf;
        buf.push_str(&self.text[self.emitted..]);
        Cow::Owned(buf)
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The first index at or after `i` whose byte is a trigger: 0x30..=0x40,
/// that is a digit, `:`, `;`, `<`, `=`, `>`, `?` or `@`. Eight bytes at a
/// time: for each byte `x < 0x80`, `0x7f + 0x41 - x` has its high bit set
/// when `x < 0x41`, and `x + 0x7f - 0x2f` when `x > 0x2f`; neither carries
/// into the next byte. Bytes >= 0x80 (UTF-8) are never triggers.
#[inline(always)]
fn next_trigger(b: &[u8], mut i: usize) -> Option<usize> {
    let hits = |x: u64| {
        let low = x & (LO * 0x7f);
        (LO * (0x7f + 0x41)).wrapping_sub(low) & !x & (low + LO * (0x7f - 0x2f)) & HI
    };
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let h = hits(u64::from_le_bytes(word));
        if h != 0 {
            return Some(i + (h.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i >= b.len() {
        return None;
    }
    if b.len() >= 8 {
        // The last eight bytes, shifted past those already looked at.
        let start = b.len() - 8;
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[start..]);
        let h = hits(u64::from_le_bytes(word)) >> (8 * (i - start));
        return (h != 0).then(|| i + (h.trailing_zeros() / 8) as usize);
    }
    b[i..]
        .iter()
        .position(|c| (0x30..=0x40).contains(c))
        .map(|k| i + k)
}

/// Byte classes, one table lookup each.
const WORD: u8 = 1; // ASCII letter, digit or `_`
const KEY: u8 = 2; // WORD, `-`, `.`, `[`, `]`
const LOCAL: u8 = 4; // an email's local part: letter, digit, `.`, `_`, `%`, `+`, `-`
const VALUE_END: u8 = 8; // where a bare value ends

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric() || b == b'_' {
            class |= WORD | KEY;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') {
            class |= LOCAL;
        }
        if matches!(b, b'-' | b'.' | b'[' | b']') {
            class |= KEY;
        }
        if b.is_ascii_whitespace()
            || matches!(
                b,
                b'&' | b',' | b';' | b'"' | b'\'' | b')' | b'}' | b']' | b'<' | b'>' | b'|' | b'\\'
            )
        {
            class |= VALUE_END;
        }
        t[c] = class;
        c += 1;
    }
    t
};

#[inline]
fn is_word(c: u8) -> bool {
    CLASS[usize::from(c)] & WORD != 0
}

#[inline]
fn is_key_char(c: u8) -> bool {
    CLASS[usize::from(c)] & KEY != 0
}

#[inline]
fn is_local_char(c: u8) -> bool {
    CLASS[usize::from(c)] & LOCAL != 0
}

/// Where a bare (unquoted) value ends.
#[inline]
fn is_value_end(c: u8) -> bool {
    CLASS[usize::from(c)] & VALUE_END != 0
}

/// Where the value of a secret header (`Authorization: Bearer x`) ends.
fn is_header_value_end(c: u8) -> bool {
    matches!(
        c,
        b'\n' | b'\r' | b'\\' | b'"' | b'\'' | b',' | b'|' | b'}' | b']'
    )
}

fn skip_word(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_word(b[i]) {
        i += 1;
    }
    i
}

/// One run of digits in a digit sequence.
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// What joins it to the previous group: 0 for the first, else `b' '`,
    /// `b'-'`, `b'.'`, or `b')'` straight after a closing parenthesis.
    sep: u8,
    /// Written `(555)`: `open` is the index of the `(`.
    paren: bool,
    open: usize,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Most groups in one digit sequence (a card has at most 5, a phone 6).
const MAX_GROUPS: usize = 10;

/// What the words before a number say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    None,
    /// `phone`, `tel`, `mobile`, `fax`, ...: bare digits are a phone number.
    Phone,
    /// `ssn`, `tin`, `itin`, `ein`, `tax id`: nine bare digits are a tax id.
    Tax,
    /// A key or word ending in `id` (`trace_id`, `orderId`), or naming a
    /// measure (`offset`, `bytes`, `ts`, `duration_ns`): never a card.
    Id,
}

const PHONE_LABELS: &[&[u8]] = &[
    b"phone",
    b"telephone",
    b"tel",
    b"mobile",
    b"cell",
    b"cellphone",
    b"fax",
    b"msisdn",
    b"sms",
    b"whatsapp",
];

/// Keys naming a measure or a counter: the number after them is not a card.
const MEASURE_LABELS: &[&[u8]] = &[
    b"offset",
    b"bytes",
    b"size",
    b"length",
    b"count",
    b"total",
    b"duration",
    b"elapsed",
    b"ts",
    b"timestamp",
    b"time",
    b"epoch",
    b"seq",
    b"sequence",
    b"nonce",
    b"version",
    b"pid",
    b"ms",
    b"us",
    b"ns",
    b"checksum",
    b"crc",
];

const TAX_LABELS: &[&[u8]] = &[
    b"ssn",
    b"itin",
    b"tin",
    b"ein",
    b"fein",
    b"taxid",
    b"tax_id",
    b"tax-id",
    b"taxpayerid",
    b"taxpayer_id",
    b"security",
];

/// Whether `lower` ends with `label` at a word boundary: at its start, after
/// a non-letter, or where `original` turns to upper case (`mobilePhone`).
fn ends_with_label(lower: &[u8], original: &[u8], label: &[u8]) -> bool {
    if !lower.ends_with(label) {
        return false;
    }
    let at = lower.len() - label.len();
    at == 0 || !lower[at - 1].is_ascii_alphabetic() || original[at].is_ascii_uppercase()
}

/// Classifies one word; the flag says it is a filler (`number`, `no`, `id`)
/// that takes its meaning from the word before it.
fn classify(word: &[u8]) -> (Label, bool) {
    let mut word = word;
    while let [rest @ .., b'.'] = word {
        word = rest;
    }
    if word.is_empty() || word.len() > 40 {
        return (Label::None, false);
    }
    let mut buf = [0u8; 40];
    let lower = &mut buf[..word.len()];
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    let lower: &[u8] = lower;
    if matches!(lower, b"number" | b"num" | b"no" | b"nr") {
        return (Label::None, true);
    }
    if matches!(lower, b"id" | b"ids") {
        return (Label::Id, true);
    }
    let mut base = lower;
    for suffix in [&b"number"[..], b"num", b"no", b"nr"] {
        if lower.len() > suffix.len() && lower.ends_with(suffix) {
            base = &lower[..lower.len() - suffix.len()];
            while let [rest @ .., b'_' | b'-' | b'.'] = base {
                base = rest;
            }
            break;
        }
    }
    for candidate in [base, lower] {
        let original = &word[..candidate.len()];
        if TAX_LABELS
            .iter()
            .any(|l| ends_with_label(candidate, original, l))
        {
            return (Label::Tax, false);
        }
        if PHONE_LABELS
            .iter()
            .any(|l| ends_with_label(candidate, original, l))
        {
            return (Label::Phone, false);
        }
    }
    if lower.ends_with(b"id")
        || lower.ends_with(b"ids")
        || MEASURE_LABELS
            .iter()
            .any(|l| ends_with_label(lower, word, l))
    {
        return (Label::Id, false);
    }
    (Label::None, false)
}

/// The word of label characters that ends at `end`.
fn word_before(b: &[u8], end: usize, floor: usize) -> usize {
    let mut i = end;
    while i > floor
        && end - i < 40
        && (b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b'-' | b'.'))
    {
        i -= 1;
    }
    i
}

/// What the words before `lead` (the first byte of a number) say it is:
/// `phone: 5551234567`, `"ssn":"123456789"`, `SSN #123456789`,
/// `phone number 5551234567`, `trace_id=4111…`.
fn label_before(b: &[u8], lead: usize, floor: usize) -> Label {
    let mut i = lead;
    let mut skipped = 0;
    while i > floor
        && skipped < 6
        && matches!(
            b[i - 1],
            b' ' | b'\t' | b':' | b'=' | b'"' | b'\'' | b'#' | b'\\' | b'('
        )
    {
        i -= 1;
        skipped += 1;
    }
    let start = word_before(b, i, floor);
    if start == i {
        return Label::None;
    }
    let (label, filler) = classify(&b[start..i]);
    if !filler {
        return label;
    }
    // "phone number", "tax id", "social security number": the word before.
    if start > floor + 1 && b[start - 1] == b' ' {
        let end = start - 1;
        let before = word_before(b, end, floor);
        if before < end {
            let word = &b[before..end];
            if word.eq_ignore_ascii_case(b"tax") || word.eq_ignore_ascii_case(b"taxpayer") {
                return Label::Tax;
            }
            if let (l @ (Label::Phone | Label::Tax), _) = classify(word) {
                return l;
            }
        }
    }
    label
}

impl Rules {
    /// Masks `text` in one pass; borrowed when nothing changed.
    pub(crate) fn scan<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match next_trigger(text.as_bytes(), 0) {
            None => Cow::Borrowed(text),
            Some(first) => self.scan_from(text, first),
        }
    }

    /// The scan, from the first trigger on.
    #[inline(never)]
    fn scan_from<'t>(&self, text: &'t str, first: usize) -> Cow<'t, str> {
        let b = text.as_bytes();
        let mut out = Out::new(text);
        let mut force = usize::MAX;
        let mut next = Some(first);
        while let Some(p) = next {
            let i = match b[p] {
                b'0'..=b'9' => {
                    // Most numbers are short and stand alone (`42`, `x86`,
                    // `10:15`): decided here, without a call.
                    let run_end = p + b[p..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let after = b.get(run_end).copied();
                    if run_end - p < 7
                        && (p == out.emitted || b[p - 1] != b'%')
                        && !matches!(after, Some(b' ' | b'-' | b'.' | b')'))
                    {
                        match after {
                            Some(c) if is_word(c) => skip_word(b, run_end),
                            _ => run_end,
                        }
                    } else {
                        self.on_digit(text, p, &mut out, &mut force)
                    }
                }
                b'@' => self.on_at(text, p, p + 1, &mut out),
                b'=' => self.on_equals(text, p, &mut out),
                b':' => self.on_colon(text, p, &mut out),
                _ => p + 1,
            };
            next = next_trigger(b, i);
        }
        out.finish()
    }

    /// A digit at `p`: decides whether a digit sequence starts here.
    #[inline(never)]
    fn on_digit(&self, text: &str, p: usize, out: &mut Out<'_>, force: &mut usize) -> usize {
        let b = text.as_bytes();
        let floor = out.emitted;
        // The common case first: a short number that does not go on
        // (`42`, `10:15`, `x86`, `200 OK`) can be nothing we mask.
        let run_end = p + b[p..].iter().take_while(|c| c.is_ascii_digit()).count();
        if run_end - p < 7 && (p == floor || b[p - 1] != b'%') {
            match b.get(run_end) {
                None => return run_end,
                Some(&c) if is_word(c) => return skip_word(b, run_end),
                Some(b' ' | b'-' | b'.') => {
                    if !b
                        .get(run_end + 1)
                        .is_some_and(|&d| d.is_ascii_digit() || d == b'(')
                    {
                        return run_end + 1;
                    }
                }
                Some(b')') => {}
                Some(_) => return run_end,
            }
        }
        if b.get(run_end) == Some(&b'.')
            && b.get(run_end + 1).is_some_and(u8::is_ascii_digit)
            && (p == floor || !matches!(b[p - 1], b'+' | b'%'))
        {
            // Joined by dots, only 555.123.4567 or 1.555.123.4567 is
            // personal; versions, addresses and decimals are skipped whole.
            // (A `.` with no digit after it ends the number: a full stop.)
            if !matches!(run_end - p, 1 | 3) {
                let mut i = run_end;
                while i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                return if b.get(i).is_some_and(|&c| is_word(c)) {
                    skip_word(b, i)
                } else {
                    i
                };
            }
            let mut lengths = [0usize; 5];
            let mut groups = 0;
            let mut i = p;
            loop {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if groups < lengths.len() {
                    lengths[groups] = i - start;
                }
                groups += 1;
                if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    i += 1;
                } else {
                    break;
                }
            }
            let phone = matches!(
                (groups, lengths),
                (3, [3, 3, 4, ..]) | (4, [1, 3, 3, 4, ..])
            );
            if !phone {
                return if b.get(i).is_some_and(|&c| is_word(c)) {
                    skip_word(b, i)
                } else {
                    i
                };
            }
        }
        let forced = *force == p;
        // Bytes already replaced count as a separator.
        let prev = if p > floor && !forced { b[p - 1] } else { b' ' };
        let mut lead = p;
        let mut plus = false;
        let mut open = None;
        match prev {
            c if c.is_ascii_alphabetic() || c == b'_' => {
                if (c == b'B' || c == b'b')
                    && p >= floor + 3
                    && b[p - 2] == b'2'
                    && b[p - 3] == b'%'
                    && !(p > floor + 3 && b[p - 4].is_ascii_alphanumeric())
                {
                    // %2B, an encoded '+', before an international number.
                    plus = true;
                    lead = p - 3;
                } else if !(matches!(c, b'n' | b't' | b'r') && p >= floor + 2 && b[p - 2] == b'\\')
                {
                    // Joined to letters (`a1b2`, `v2`, `id42`), except an
                    // escaped newline or tab (`\n4111…`).
                    return skip_word(b, p);
                }
            }
            c if c.is_ascii_digit() => return skip_word(b, p),
            b'%' => {
                let next = b.get(p + 1).copied();
                if b[p] == b'4' && next == Some(b'0') {
                    return self.on_at(text, p - 1, p + 2, out);
                }
                if b[p] == b'2'
                    && matches!(next, Some(b'B' | b'b'))
                    && b.get(p + 2).is_some_and(u8::is_ascii_digit)
                {
                    // Handled at the digit after it (see above).
                    return p + 2;
                }
                if next.is_some_and(|c| c.is_ascii_hexdigit()) {
                    // Another escape (`%3D4111…`): what follows starts afresh.
                    *force = p + 2;
                    return p + 2;
                }
                return skip_word(b, p);
            }
            // Digits after a decimal point, or inside a dotted name.
            b'.' => return skip_word(b, p),
            // Inside a mask this masker wrote (`j***4`).
            b'*' => return skip_word(b, p),
            // The last four digits of a mask this masker wrote
            // (`***-***-4567 1234 ...` must not become a new number).
            b'-' if p >= 2 && b[p - 2] == b'*' => return skip_word(b, p),
            // `a456-426614174000` (a UUID), but not `ORD-4111…`.
            b'-' if p >= floor + 2 && b[p - 2].is_ascii_alphanumeric() => {
                let mut i = p - 1;
                let mut k = 0;
                while i > floor && k < 64 && b[i - 1].is_ascii_alphanumeric() {
                    if b[i - 1].is_ascii_digit() {
                        return skip_word(b, p);
                    }
                    i -= 1;
                    k += 1;
                }
            }
            // Thousands: `1,234,567`.
            b',' if p >= floor + 2
                && b[p - 2].is_ascii_digit()
                && b[p..].iter().take_while(|c| c.is_ascii_digit()).count() == 3 =>
            {
                return p + 3;
            }
            // A keyed hash this masker wrote (`phone:hmac:555123456789`).
            b':' if p >= floor + 5 && b[p - 5..p - 1].eq_ignore_ascii_case(b"hmac") => {
                return skip_word(b, p);
            }
            b'+' => {
                if p >= floor + 2 && b[p - 2].is_ascii_alphanumeric() {
                    // `1+4915112345678`, `1.5e+10`: arithmetic, not a number.
                    return skip_word(b, p);
                }
                plus = true;
                lead = p - 1;
            }
            // `(555) 123-4567`; a longer number in parentheses is just
            // enclosed (`(4111111111111111)`).
            b'(' if run_end - p <= 4 => {
                open = Some(p - 1);
            }
            _ => {}
        }
        if !plus && open.is_none() {
            let goes_on = matches!(b.get(run_end), Some(b' ' | b'-' | b'.'))
                && b.get(run_end + 1)
                    .is_some_and(|&d| d.is_ascii_digit() || d == b'(');
            if !goes_on {
                return self.on_single_run(b, p, run_end, out);
            }
        }
        self.on_sequence(text, lead, p, plus, open, out)
    }

    /// A run of digits `p..end` standing alone (the common case of a long
    /// number: an id, an epoch, a count, a card or phone number written
    /// plain): the same rules as [`match_at`](Self::match_at) for one group.
    fn on_single_run(&self, b: &[u8], p: usize, end: usize, out: &mut Out<'_>) -> usize {
        if let Some(&c) = b.get(end)
            && (is_word(c) || matches!(c, b'@' | b'*') || b[end..].starts_with(b"%40"))
        {
            // Joined to what follows: the scan skips it from there.
            return end;
        }
        if matches!(b.get(end), Some(b'.' | b'-'))
            && b.get(end + 1).is_some_and(|&d| is_word(d) || d == b'@')
        {
            // `4111….json`, `4111…-v2`: part of a name. Any other byte after
            // the last digit (`.` `,` `;` `:` `!` `?` `)` a quote, a space)
            // ends the number.
            return end;
        }
        let digits = &b[p..end];
        let len = digits.len();
        let mut label = None;
        let mut label_of = || *label.get_or_insert_with(|| label_before(b, p, 0));
        if (12..=19).contains(&len) && numbers::is_card(digits) && label_of() != Label::Id {
            self.write_number(out, p, end, Kind::Card, digits);
        } else if (7..=15).contains(&len) {
            match label_of() {
                Label::Phone => self.write_number(out, p, end, Kind::Phone, digits),
                Label::Tax if len == 9 => self.write_number(out, p, end, Kind::Ssn, digits),
                _ => {}
            }
        }
        end
    }

    /// Reads the digit sequence whose first digit is at `first` (`lead` is
    /// where its `+` is, if any), masks what matches, and returns where the
    /// scan goes on.
    fn on_sequence(
        &self,
        text: &str,
        lead: usize,
        first: usize,
        plus: bool,
        open: Option<usize>,
        out: &mut Out<'_>,
    ) -> usize {
        let b = text.as_bytes();
        let mut g = [Group::default(); MAX_GROUPS];
        let mut n = 0;
        let mut pos = first;
        let mut sep = 0u8;
        let mut open = open;
        let mut joined_tail = false;
        let resume;
        loop {
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            let mut group = Group {
                start,
                end: pos,
                sep,
                paren: false,
                open: 0,
            };
            let mut after = pos;
            if let Some(o) = open.take()
                && b.get(pos) == Some(&b')')
            {
                group.paren = true;
                group.open = o;
                after = pos + 1;
            }
            g[n] = group;
            n += 1;
            let Some(&c) = b.get(after) else {
                resume = after;
                break;
            };
            let next = b.get(after + 1).copied();
            let mut more = false;
            if group.paren && c.is_ascii_digit() {
                // (555)123-4567
                sep = b')';
                pos = after;
                more = true;
            } else if is_word(c)
                || matches!(c, b'@' | b'*')
                || (c == b'%' && b[after..].starts_with(b"%40"))
            {
                joined_tail = true;
            } else if matches!(c, b' ' | b'-' | b'.') {
                match next {
                    Some(d) if d.is_ascii_digit() => {
                        sep = c;
                        pos = after + 1;
                        more = true;
                    }
                    Some(b'(') if c != b'.' && b.get(after + 2).is_some_and(u8::is_ascii_digit) => {
                        sep = c;
                        open = Some(after + 1);
                        pos = after + 2;
                        more = true;
                    }
                    // `4111….json`, `555-123-4567-ext`
                    Some(d) if c != b' ' && (is_word(d) || d == b'@') => joined_tail = true,
                    _ => {}
                }
            }
            if !more {
                resume = after;
                break;
            }
            if n == MAX_GROUPS {
                // Too long to be anything: the open token is cut, drop it.
                if sep != b' ' {
                    joined_tail = true;
                }
                resume = after;
                break;
            }
        }
        // Nothing we mask has fewer than 7 digits.
        if g[..n].iter().map(Group::len).sum::<usize>() < 7 {
            return resume;
        }
        if joined_tail {
            // The last token runs into letters: none of it is a number.
            let mut t = n - 1;
            while t > 0 && g[t].sep != b' ' {
                t -= 1;
            }
            n = t;
        }
        let g = &g[..n];
        let mut label = None;
        let mut s = 0;
        while s < n {
            // A match starts at a token: never inside `2026-11-26`.
            if s > 0 && g[s].sep != b' ' {
                s += 1;
                continue;
            }
            match self.match_at(b, g, s, s == 0 && plus, &mut label, lead) {
                // One number that is nothing we mask: no match inside it.
                Some((e, None)) => s = e,
                Some((e, Some(kind))) => {
                    let begin = if s == 0 && plus {
                        lead
                    } else if g[s].paren {
                        g[s].open
                    } else {
                        g[s].start
                    };
                    let finish = g[e - 1].end + usize::from(g[e - 1].paren);
                    let mut digits = [0u8; 24];
                    let mut len = 0;
                    for group in &g[s..e] {
                        for &d in &b[group.start..group.end] {
                            if len < digits.len() {
                                digits[len] = d;
                                len += 1;
                            }
                        }
                    }
                    self.write_number(out, begin, finish, kind, &digits[..len]);
                    s = e;
                }
                None => s += 1,
            }
        }
        resume
    }

    /// The shape that matches the groups from `s`, and where it ends; no
    /// kind when the groups up to there are one number that is none of
    /// them (a grouped number that fails Luhn as a whole).
    #[allow(clippy::too_many_arguments)]
    fn match_at(
        &self,
        b: &[u8],
        g: &[Group],
        s: usize,
        plus: bool,
        label: &mut Option<Label>,
        lead: usize,
    ) -> Option<(usize, Option<Kind>)> {
        let n = g.len();
        let boundary = |e: usize| e == n || g[e].sep == b' ';
        let mut number = None;
        let label_of =
            |label: &mut Option<Label>| *label.get_or_insert_with(|| label_before(b, lead, 0));

        if plus {
            // +4915112345678, +1 (555) 123-4567, +44 20 7946 0958
            let e = widest(g, s, 8, 15)?;
            let date = e - s == 3 && g[s].len() == 4 && g[s + 1].len() == 2 && g[s + 2].len() == 2;
            return (!date).then_some((e, Some(Kind::Phone)));
        }

        // Cards: plain, or grouped with spaces or dashes (4-4-4-4, 4-6-5, ...).
        if !g[s].paren {
            let first = g[s].len();
            if (12..=19).contains(&first) && boundary(s + 1) {
                if numbers::is_card(&b[g[s].start..g[s].end])
                    && !(s == 0 && label_of(label) == Label::Id)
                {
                    return Some((s + 1, Some(Kind::Card)));
                }
            } else {
                match grouped_card(b, g, s) {
                    Grouped::Card(e) => return Some((e, Some(Kind::Card))),
                    Grouped::Number(e) => number = Some(e),
                    Grouped::Nothing => {}
                }
            }
        }

        let plain = |i: usize| i < n && !g[i].paren;
        // SSN and ITIN: 123-45-6789, 123 45 6789.
        if s + 3 <= n
            && plain(s)
            && plain(s + 1)
            && plain(s + 2)
            && g[s].len() == 3
            && g[s + 1].len() == 2
            && g[s + 2].len() == 4
            && matches!(g[s + 1].sep, b'-' | b' ')
            && g[s + 2].sep == g[s + 1].sep
            && boundary(s + 3)
            && &b[g[s].start..g[s].end] != b"000"
            && &b[g[s + 1].start..g[s + 1].end] != b"00"
            && &b[g[s + 2].start..g[s + 2].end] != b"0000"
        {
            return Some((s + 3, Some(Kind::Ssn)));
        }
        // EIN: 12-3456789.
        if s + 2 <= n
            && plain(s)
            && plain(s + 1)
            && g[s].len() == 2
            && g[s + 1].len() == 7
            && g[s + 1].sep == b'-'
            && boundary(s + 2)
            && &b[g[s].start..g[s].end] != b"00"
        {
            return Some((s + 2, Some(Kind::Ssn)));
        }
        // North American numbers: 555-123-4567, 555.123.4567, 555 123 4567,
        // (555) 123-4567, (555)123-4567, 1-800-555-1234, 1 (555) 123-4567.
        let country = g[s].len() == 1
            && b[g[s].start] == b'1'
            && plain(s)
            && s + 4 <= n
            && matches!(g[s + 1].sep, b' ' | b'-' | b'.');
        for i in [Some(s), country.then_some(s + 1)].into_iter().flatten() {
            if i + 3 > n {
                continue;
            }
            let (area, exchange, line) = (g[i], g[i + 1], g[i + 2]);
            if area.len() == 3
                && exchange.len() == 3
                && line.len() == 4
                && !exchange.paren
                && !line.paren
                && boundary(i + 3)
            {
                let ok = if area.paren {
                    matches!(exchange.sep, b')' | b' ' | b'-' | b'.')
                        && matches!(line.sep, b'-' | b'.' | b' ')
                } else {
                    matches!(exchange.sep, b'-' | b'.' | b' ') && line.sep == exchange.sep
                };
                if ok {
                    return Some((i + 3, Some(Kind::Phone)));
                }
            }
        }

        // Bare digits after a label: "phone": "5551234567", SSN 123456789.
        // (The words before a number are read only when its shape allows.)
        if s == 0 {
            let tax_shape = plain(0) && g[0].len() == 9 && boundary(1);
            let phone_span = if g.iter().all(|x| x.sep != b'.') {
                widest(g, 0, 7, 15)
            } else {
                None
            };
            if tax_shape || phone_span.is_some() {
                match label_of(label) {
                    Label::Phone => {
                        if let Some(e) = phone_span {
                            return Some((e, Some(Kind::Phone)));
                        }
                    }
                    Label::Tax if tax_shape => return Some((1, Some(Kind::Ssn))),
                    _ => {}
                }
            }
        }
        number.map(|e| (e, None))
    }

    /// Writes the mask (or keyed hash) of a number over `start..end`.
    fn write_number(&self, out: &mut Out<'_>, start: usize, end: usize, kind: Kind, digits: &[u8]) {
        let buf = out.begin(start);
        match &self.hasher {
            Some(hasher) => {
                // One number, one tag: +1 555 123 4567 and (555) 123-4567 agree.
                let normalized = if kind == Kind::Phone && digits.len() == 11 && digits[0] == b'1' {
                    &digits[1..]
                } else {
                    digits
                };
                hasher.write_tag(kind.name(), normalized, buf);
            }
            None => {
                let last4 = digits[digits.len().saturating_sub(4)..]
                    .iter()
                    .map(|&d| char::from(d));
                match kind {
                    Kind::Card => {
                        buf.push_str("****-****-****-");
                        buf.extend(last4);
                    }
                    Kind::Phone => {
                        buf.push_str("***-***-");
                        buf.extend(last4);
                    }
                    Kind::Ssn | Kind::Email => buf.push_str("***-**-****"),
                }
            }
        }
        out.end(end);
    }

    /// `@` at `at` (or `%40` starting there), the domain from `domain`.
    #[inline(never)]
    fn on_at(&self, text: &str, at: usize, domain: usize, out: &mut Out<'_>) -> usize {
        let b = text.as_bytes();
        let floor = out.emitted;
        if b[at] == b'@'
            && let Some((start, end)) = url_password(b, at, floor)
        {
            if &b[start..end] != REDACTED.as_bytes() {
                out.replace(start, end, REDACTED);
            }
            return domain;
        }
        let Some(local) = local_part_start(b, at, floor) else {
            return domain;
        };
        let Some(end) = domain_end(b, domain) else {
            return domain;
        };
        if b.get(end) == Some(&b'@') || b[end..].starts_with(b"%40") {
            // `a@b.com@c.com`: glued addresses, none of them sure.
            return domain;
        }
        let buf = out.begin(local);
        match &self.hasher {
            Some(hasher) => {
                let mut normalized = Vec::with_capacity(at - local + 1 + end - domain);
                normalized.extend(b[local..at].iter().map(u8::to_ascii_lowercase));
                normalized.push(b'@');
                normalized.extend(b[domain..end].iter().map(u8::to_ascii_lowercase));
                hasher.write_tag(Kind::Email.name(), &normalized, buf);
            }
            None => {
                buf.push(char::from(b[local]));
                buf.push_str("***@");
                buf.push_str(&text[domain..end]);
            }
        }
        out.end(end);
        end
    }

    /// The start of the key that ends at `end`, when that key is secret by
    /// the rule for keys in text: its last segment (`password`,
    /// `user.password`, `user[password]`, `db_password`). The decision walks
    /// back from `end` and usually stops after a byte or two.
    fn secret_key_before(&self, text: &str, end: usize, floor: usize) -> Option<usize> {
        let b = text.as_bytes();
        if !self.keys.is_secret_before(b, end, floor) {
            return None;
        }
        key_start(b, end, floor)
    }

    /// `=` at `p`: `password=hunter2`, `api_key = "k"`, `user[password]=x`.
    #[inline(never)]
    fn on_equals(&self, text: &str, p: usize, out: &mut Out<'_>) -> usize {
        let b = text.as_bytes();
        // Keys are read from the text as it came (what is before them may
        // have been masked already, but is never written again).
        let floor = 0;
        let mut key_end = p;
        if key_end > floor && b[key_end - 1] == b' ' {
            key_end -= 1;
        }
        if key_end <= floor {
            return p + 1;
        }
        let last = b[key_end - 1];
        if !(last.is_ascii_alphabetic() || last == b']') {
            return p + 1;
        }
        if self.secret_key_before(text, key_end, floor).is_none() {
            return p + 1;
        }
        let mut v = p + 1;
        if key_end < p {
            while v < b.len() && b[v] == b' ' && v - p <= 2 {
                v += 1;
            }
        }
        redact_value(b, v, None, out)
    }

    /// `:` at `p`: `"token": "abc"`, `\"token\":\"abc\"`, `token:abc`,
    /// `Authorization: Bearer abc`, `password: hunter2` at a field's start.
    #[inline(never)]
    fn on_colon(&self, text: &str, p: usize, out: &mut Out<'_>) -> usize {
        let b = text.as_bytes();
        // Keys are read from the text as it came (what is before them may
        // have been masked already, but is never written again).
        let floor = 0;
        let mut j = p;
        if j > floor && b[j - 1] == b' ' {
            j -= 1;
        }
        if j <= floor {
            return p + 1;
        }
        let last = b[j - 1];
        if last == b'"' || last == b'\'' {
            // A quoted key: JSON, or JSON inside a JSON string.
            let mut key_end = j - 1;
            let escaped = last == b'"' && key_end > floor && b[key_end - 1] == b'\\';
            if escaped {
                key_end -= 1;
            }
            if key_end <= floor {
                return p + 1;
            }
            let k = b[key_end - 1];
            if !(k.is_ascii_alphabetic() || k == b']') {
                return p + 1;
            }
            if self.secret_key_before(text, key_end, floor).is_none() {
                return p + 1;
            }
            // A quoted key is letters, digits, `_`, `-` and `.` only.
            let key_start = key_end
                - b[key_end.saturating_sub(128)..key_end]
                    .iter()
                    .rev()
                    .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
                    .count();
            if key_start == key_end || key_start == 0 || b[key_start - 1] != last {
                return p + 1;
            }
            if escaped && (key_start < 2 || b[key_start - 2] != b'\\') {
                return p + 1;
            }
            let mut v = p + 1;
            while v < b.len() && b[v] == b' ' && v - p <= 4 {
                v += 1;
            }
            return redact_value(b, v, Some(escaped), out);
        }
        if j != p || !(last.is_ascii_alphabetic() || last == b']') {
            return p + 1;
        }
        let Some(key_start) = self.secret_key_before(text, p, floor) else {
            return p + 1;
        };
        // The last segment names the value: `http.request.header.cookie`,
        // `user[password]`; it is read the same before and after masking.
        let segment_end = if b[p - 1] == b']' { p - 1 } else { p };
        let segment = b[key_start..segment_end]
            .iter()
            .rposition(|&c| matches!(c, b'.' | b'[' | b']'))
            .map_or(key_start, |i| key_start + i + 1);
        let key_start = segment;
        let header = self.keys.is_header(&text[segment..segment_end]);
        match b.get(p + 1) {
            None | Some(b'/') => p + 1,
            Some(b' ' | b'\t') => {
                // `key: value` is a key only at a field's start, so that
                // prose ("reset your password: the link ...") stays; a
                // secret header name counts anywhere.
                if !header && !field_start(b, key_start) {
                    return p + 1;
                }
                let mut v = p + 1;
                while v < b.len() && matches!(b[v], b' ' | b'\t') && v - p <= 4 {
                    v += 1;
                }
                if header {
                    return redact_header_value(b, v, out);
                }
                // "SSN: 123-45-6789" is a label: the detectors mask it (and
                // leave the mask they wrote as it is).
                let end = v + b[v..].iter().take_while(|&&c| !is_value_end(c)).count();
                if end > v && !b[v..].starts_with(REDACTED.as_bytes()) {
                    let value = &text[v..end];
                    if is_mask(value) || matches!(self.scan(value), Cow::Owned(_)) {
                        return v;
                    }
                }
                redact_value(b, v, None, out)
            }
            Some(_) if header => redact_header_value(b, p + 1, out),
            // A keyed hash this masker wrote (`ssn:hmac:328d29be68b7`).
            Some(_) if b[p + 1..].starts_with(b"hmac:") => p + 1,
            Some(_) => redact_value(b, p + 1, None, out),
        }
    }
}

/// Whether `value` holds a mask or tag this masker writes.
fn is_mask(value: &str) -> bool {
    value.contains("***-") || value.contains("***@") || value.contains(":hmac:")
}

/// What the groups from one in a digit sequence turned out to be, read as
/// a card written in groups (4-4-4-4, 4-6-5, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grouped {
    /// A card up to this group (exclusive).
    Card(usize),
    /// One number up to this group, no card: a card's prefix and length
    /// but a failed Luhn sum, and a shorter prefix of it that passes.
    Number(usize),
    Nothing,
}

/// Reads the groups from `s` (the first of 4 digits) joined by one
/// separator as a card: groups of 1 to 6 digits, 19 digits at most,
/// stopping after a group of fewer than 3 (an expiry `12/27` after a card).
///
/// The card is the longest run with an issuer's prefix and length and a
/// valid Luhn sum, unless more groups of four go on from it to a longer
/// run with a card's prefix and length that fails Luhn: then that longer
/// run is the number, and no part of it is a card (`5018 0000 0009 1234`:
/// the first 12 digits pass, the 16 do not). A shorter last group is not a
/// continuation (`4111 1111 1111 1111 123`: a card, then a code).
fn grouped_card(b: &[u8], g: &[Group], s: usize) -> Grouped {
    let n = g.len();
    if g[s].len() != 4 || g[s].paren || s + 2 >= n || !matches!(g[s + 1].sep, b' ' | b'-') {
        return Grouped::Nothing;
    }
    let sep = g[s + 1].sep;
    let mut digits = [0u8; 19];
    digits[..4].copy_from_slice(&b[g[s].start..g[s].end]);
    let mut total = 4;
    let mut e = s + 1;
    let mut card = None;
    let mut spoiled = None;
    // Every group after `card` has four digits.
    let mut fours = true;
    while e < n
        && g[e].sep == sep
        && !g[e].paren
        && (1..=6).contains(&g[e].len())
        && total + g[e].len() <= 19
    {
        let len = g[e].len();
        digits[total..total + len].copy_from_slice(&b[g[e].start..g[e].end]);
        total += len;
        e += 1;
        fours &= len == 4;
        if e - s >= 3
            && total >= 12
            && (e == n || g[e].sep == b' ')
            && numbers::issuer_matches(&digits[..total])
        {
            if numbers::luhn_valid(&digits[..total]) {
                card = Some(e);
                spoiled = None;
                fours = true;
            } else if card.is_some() && fours {
                spoiled = Some(e);
            }
        }
        if len < 3 {
            break;
        }
    }
    match (card, spoiled) {
        (Some(_), Some(e)) => Grouped::Number(e),
        (Some(e), None) => Grouped::Card(e),
        (None, _) => Grouped::Nothing,
    }
}

/// The widest run of whole tokens from `s` holding `min..=max` digits.
fn widest(g: &[Group], s: usize, min: usize, max: usize) -> Option<usize> {
    let n = g.len();
    let mut total = 0;
    let mut best = None;
    for e in s + 1..=n {
        total += g[e - 1].len();
        if total > max {
            break;
        }
        if total >= min && (e == n || g[e].sep == b' ') {
            best = Some(e);
        }
    }
    best
}

/// The start of the key that ends at `end` (at most 128 key characters).
fn key_start(b: &[u8], end: usize, floor: usize) -> Option<usize> {
    let low = floor.max(end.saturating_sub(129));
    let n = b[low..end]
        .iter()
        .rev()
        .take_while(|&&c| is_key_char(c))
        .count();
    (n > 0 && n <= 128).then_some(end - n)
}

/// Whether a key starting at `start` begins a field: the text's or a line's
/// start, after a delimiter (`,` `;` `|` `{` `(` `[` a quote or a tab), after
/// two spaces, or after a `key=value` token.
fn field_start(b: &[u8], start: usize) -> bool {
    if start == 0 {
        return true;
    }
    let opener = |c: u8| {
        matches!(
            c,
            b'\n' | b'\r' | b'\t' | b'{' | b'(' | b'[' | b'|' | b',' | b';' | b'"' | b'\''
        )
    };
    let c = b[start - 1];
    if opener(c) {
        return true;
    }
    if c != b' ' {
        return false;
    }
    if start == 1 {
        return true;
    }
    let d = b[start - 2];
    if opener(d) || d == b' ' || d == b'-' {
        return true;
    }
    let token_start = b[..start - 1]
        .iter()
        .rposition(|&c| c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    b[token_start..start - 1].contains(&b'=')
}

/// The start of an email's local part ending at `at`.
fn local_part_start(b: &[u8], at: usize, floor: usize) -> Option<usize> {
    let mut i = at;
    while i > floor && is_local_char(b[i - 1]) {
        i -= 1;
        if at - i > 64 {
            return None;
        }
    }
    while i < at && b[i] == b'.' {
        i += 1;
    }
    (i < at).then_some(i)
}

/// The end of an email's domain starting at `start`: two labels or more
/// (`example.com`, `mail.eu.example.co.uk`), the last a top-level domain
/// ([`is_top_level_domain`]: letters, or an A-label such as `xn--p1ai`),
/// and not an image name (`icon@2x.png`). A `.` ends the domain unless a
/// label follows it (`write to a@b.example.` keeps its full stop).
fn domain_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut labels = 0;
    let mut last_label = start;
    let mut end = start;
    let mut first_label_end = start;
    loop {
        let label = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') && i - label < 63 {
            i += 1;
        }
        if i == label || b[label] == b'-' || b[i - 1] == b'-' {
            break;
        }
        labels += 1;
        if labels == 1 {
            first_label_end = i;
        }
        last_label = label;
        end = i;
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_alphanumeric() {
            i += 1;
        } else {
            break;
        }
    }
    if labels < 2 {
        return None;
    }
    if !is_top_level_domain(&b[last_label..end]) {
        return None;
    }
    let first = &b[start..first_label_end];
    if labels == 2
        && first.len() >= 2
        && first.ends_with(b"x")
        && first[..first.len() - 1].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    Some(end)
}

/// Whether `label` can be a top-level domain: two letters or more
/// (`com`, `co`, `example`), or an internationalized one in its ASCII form,
/// an A-label (`xn--p1ai`: `xn--` then letters, digits and hyphens).
fn is_top_level_domain(label: &[u8]) -> bool {
    if label.len() > 4 && label[..4].eq_ignore_ascii_case(b"xn--") {
        // The label's characters (letters, digits, hyphens, not ending in
        // one) were checked by the caller.
        return true;
    }
    label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic)
}

/// The password of `scheme://user:password@host` whose `@` is at `at`.
fn url_password(b: &[u8], at: usize, floor: usize) -> Option<(usize, usize)> {
    let mut i = at;
    while i > floor
        && at - i < 256
        && !matches!(
            b[i - 1],
            b' ' | b'\t'
                | b'\n'
                | b'\r'
                | b'/'
                | b'@'
                | b'"'
                | b'\''
                | b'<'
                | b'>'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b','
                | b';'
        )
    {
        i -= 1;
    }
    if i < floor + 2 || b[i - 1] != b'/' || b[i - 2] != b'/' {
        return None;
    }
    let colon = b[i..at].iter().position(|&c| c == b':')?;
    let start = i + colon + 1;
    if b[start..at].starts_with(b"hmac:") || b[i..start].contains(&b'*') {
        // A keyed hash or a mask this masker wrote, not a URL's user.
        return None;
    }
    (start < at).then_some((start, at))
}

/// Redacts the value that starts at `v` and returns where it ends. `json`
/// says the key was quoted (`Some(true)` for `\"key\"`), so a bare value
/// becomes a quoted `"[REDACTED]"` and JSON `null`, `true`, `false` stay.
fn redact_value(b: &[u8], v: usize, json: Option<bool>, out: &mut Out<'_>) -> usize {
    if b[v..].starts_with(REDACTED.as_bytes()) {
        return v + REDACTED.len();
    }
    let Some(&c) = b.get(v) else {
        return v;
    };
    match c {
        b'"' | b'\'' => {
            let (close, closed) = find_quote(b, v + 1, c);
            let inner = &b[v + 1..close];
            if !inner.is_empty() && inner != REDACTED.as_bytes() {
                out.replace(v + 1, close, REDACTED);
            }
            if closed { close + 1 } else { close }
        }
        b'\\' if b.get(v + 1) == Some(&b'"') => {
            let close = find_escaped_quote(b, v + 2);
            let inner = &b[v + 2..close];
            if !inner.is_empty() && inner != REDACTED.as_bytes() {
                out.replace(v + 2, close, REDACTED);
            }
            (close + 2).min(b.len())
        }
        b'{' | b'[' if json.is_some() => {
            let end = matching_bracket(b, v);
            out.replace(v, end, quoted(json));
            end
        }
        _ => {
            let mut end = v + b[v..].iter().take_while(|&&c| !is_value_end(c)).count();
            if end == v {
                return v;
            }
            let token = &b[v..end];
            if json.is_some() && matches!(token, b"null" | b"true" | b"false") {
                return end;
            }
            if token.iter().all(u8::is_ascii_digit) {
                // A number written in groups: `cvv=4111 1111 1111 1111`.
                while end + 1 < b.len() && b[end] == b' ' && b[end + 1].is_ascii_digit() {
                    end += 1 + b[end + 1..]
                        .iter()
                        .take_while(|&&c| !is_value_end(c))
                        .count();
                }
            } else if is_auth_scheme(token) && b.get(end) == Some(&b' ') {
                let more = b[end + 1..]
                    .iter()
                    .take_while(|&&c| !is_value_end(c))
                    .count();
                if more > 0 {
                    end += 1 + more;
                }
            }
            out.replace(v, end, quoted(json));
            end
        }
    }
}

/// `[REDACTED]`, in quotes where it replaces a bare JSON value.
fn quoted(json: Option<bool>) -> &'static str {
    match json {
        None => REDACTED,
        Some(false) => "\"[REDACTED]\"",
        Some(true) => "\\\"[REDACTED]\\\"",
    }
}

/// A secret header's value from `v` to the end of the line (or of the
/// quoted string it sits in).
fn redact_header_value(b: &[u8], v: usize, out: &mut Out<'_>) -> usize {
    if matches!(b.get(v), Some(b'"' | b'\'')) || b[v..].starts_with(REDACTED.as_bytes()) {
        return redact_value(b, v, None, out);
    }
    let mut end = v + b[v..]
        .iter()
        .take_while(|&&c| !is_header_value_end(c))
        .count();
    while end > v && b[end - 1] == b' ' {
        end -= 1;
    }
    if end > v {
        out.replace(v, end, REDACTED);
    }
    end
}

fn is_auth_scheme(token: &[u8]) -> bool {
    const SCHEMES: &[&[u8]] = &[
        b"bearer",
        b"basic",
        b"digest",
        b"token",
        b"negotiate",
        b"ntlm",
        b"apikey",
        b"hoba",
        b"mutual",
        b"aws4-hmac-sha256",
    ];
    SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(token))
}

/// The closing `quote` at or after `i` (backslash escapes skipped), or the
/// end of the line when there is none; the flag says it was found.
fn find_quote(b: &[u8], mut i: usize, quote: u8) -> (usize, bool) {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\n' => return (i, false),
            c if c == quote => return (i, true),
            _ => i += 1,
        }
    }
    (b.len(), false)
}

/// The `\"` that closes a string inside a JSON string, or the end.
fn find_escaped_quote(b: &[u8], mut i: usize) -> usize {
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            if b[i + 1] == b'"' {
                return i;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The index after the bracket that closes the one at `open`, skipping
/// strings, or the end of the text.
fn matching_bracket(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b'"' => {
                let (close, closed) = find_quote(b, i + 1, b'"');
                if !closed {
                    return b.len();
                }
                i = close;
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}
