//! Fuzzes the default PII masker: `mask` and `mask_value` never panic on any
//! text or key, the output stays within a bound of the input's length, and
//! masking is stable (masking a masked text changes nothing more), with and
//! without keyed hashing.
//!
//! The input is `key \n text`: the first line is the key for `mask_value`,
//! the rest the text; `mask` also sees the whole input.
//!
//! Length bound, from the replacements the scan can make: the greatest
//! growth per input byte is a one-byte secret value redacted behind the
//! shortest trigger (`pwd=x` or `//:p@`, 5 bytes, becomes 14: `pwd=[REDACTED]`),
//! under 3x; every other replacement (email `j***@`, phone `***-***-1234`,
//! card `****-****-****-1111`, SSN `***-**-****`) grows less per byte it
//! consumes. Hashing writes a 21 to 23 byte tag for an item of at least 6
//! bytes (`a@b.co`), under 4x. A masked text is not masked again (redactions
//! and masks are recognised), so the passes after the first add nothing.
#![no_main]

use std::borrow::Cow;
use std::sync::OnceLock;

use faultline_engine::masking::{Masker, PiiMasker, REDACTED};
use libfuzzer_sys::fuzz_target;

fn plain() -> &'static PiiMasker {
    static M: OnceLock<PiiMasker> = OnceLock::new();
    M.get_or_init(PiiMasker::default)
}

fn hashing() -> &'static PiiMasker {
    static M: OnceLock<PiiMasker> = OnceLock::new();
    M.get_or_init(|| {
        PiiMasker::default()
            .with_hash_key(b"fuzzing key, 16 bytes or more")
            .expect("a long enough key")
    })
}

fn check(masker: &PiiMasker, text: &str, factor: usize, slack: usize) {
    let once = masker.mask(text);
    if let Cow::Borrowed(b) = &once {
        assert_eq!(*b, text, "a borrowed result is the input");
    }
    assert!(
        once.len() <= factor * text.len() + slack,
        "{} bytes became {}: {text:?} -> {once:?}",
        text.len(),
        once.len()
    );
    let twice = masker.mask(&once);
    assert_eq!(once, twice, "masking is not stable for {text:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (key, text) = input.split_once('\n').unwrap_or(("", input));

    check(plain(), input, 3, 16);
    check(hashing(), input, 4, 32);

    for masker in [plain(), hashing()] {
        let value = masker.mask_value(key, text);
        if masker.is_secret_key(key) {
            assert_eq!(value, REDACTED);
        } else {
            assert_eq!(value, masker.mask(text));
        }
        // A pure function of the key.
        assert_eq!(masker.is_secret_key(key), masker.is_secret_key(key));
    }
});
