//! Fuzzes the baggage parser and propagator: never panics, limits hold,
//! and the written header reads back to the same entries.
#![no_main]

use faultline_engine::propagation::baggage::{Baggage, MAX_BYTES, MAX_MEMBERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let values: Vec<&str> = text.splitn(3, '\n').collect();
    let baggage = Baggage::parse(values.iter().copied());
    assert!(baggage.len() <= MAX_MEMBERS);
    let header = baggage.to_header();
    assert!(header.len() <= MAX_BYTES);
    let again = Baggage::parse([header.as_str()]);
    for entry in again.entries() {
        assert_eq!(baggage.get(entry.key()), Some(entry.value()));
    }
});
