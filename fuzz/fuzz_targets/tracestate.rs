//! Fuzzes the tracestate parser over one to three header values: never
//! panics, what it accepts round-trips, and what it writes respects the limits.
#![no_main]

use faultline_engine::propagation::w3c::{MAX_TRACESTATE_LEN, MAX_TRACESTATE_MEMBERS, TraceStateList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let values: Vec<&str> = text.splitn(3, '\n').collect();
    if let Ok(list) = TraceStateList::parse(values.iter().copied()) {
        assert!(list.members().len() <= MAX_TRACESTATE_MEMBERS);
        let header = list.to_header();
        assert!(header.len() <= MAX_TRACESTATE_LEN);
        let again = TraceStateList::parse([header.as_str()]).expect("a written tracestate parses");
        assert!(again.members().iter().all(|m| list.members().contains(m)));
    }
});
