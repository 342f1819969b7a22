//! Fuzzes the traceparent parser: never panics, and anything it accepts
//! writes back to a value it accepts again with the same ids.
#![no_main]

use faultline_engine::propagation::w3c::TraceParent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(tp) = TraceParent::parse(text) {
        let again = TraceParent::parse(&tp.to_header()).expect("a written traceparent parses");
        assert_eq!(again.trace_id, tp.trace_id);
        assert_eq!(again.parent_id, tp.parent_id);
        assert_eq!(again.flags, tp.flags);
    }
});
