use super::*;
use http::HeaderMap;
use proptest::prelude::*;

const TID: &str = "12345678901234567890123456789012";

fn tp(s: &str) -> Result<TraceParent, TraceParentError> {
    TraceParent::parse(s)
}

#[test]
fn traceparent_table() {
    use TraceParentError as E;
    let ok = |s: &str| tp(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    // The specification's examples.
    let t = ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(t.parent_id.to_string(), "00f067aa0ba902b7");
    assert!(t.flags.is_sampled());
    assert!(
        !ok("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
            .flags
            .is_sampled()
    );
    // Random flag kept, unknown flags cleared.
    assert_eq!(
        ok(&format!("00-{TID}-1234567890123456-02")).flags.to_u8(),
        0x02
    );
    assert_eq!(
        ok(&format!("00-{TID}-1234567890123456-ff")).flags.to_u8(),
        0x03
    );
    // Spaces and tabs around the value.
    ok(&format!(" \t00-{TID}-1234567890123456-01 \t"));
    // Higher versions: forward compatible.
    assert_eq!(ok(&format!("cc-{TID}-1234567890123456-01")).version, 0xcc);
    ok(&format!(
        "cc-{TID}-1234567890123456-01-what-the-future-will-be-like"
    ));

    let cases: &[(&str, E)] = &[
        ("", E::Length(0)),
        ("00", E::Length(2)),
        (
            "ff-12345678901234567890123456789012-1234567890123456-01",
            E::ForbiddenVersion,
        ),
        (
            "0x-12345678901234567890123456789012-1234567890123456-01",
            E::Version,
        ),
        (
            "0-12345678901234567890123456789012-1234567890123456-01-",
            E::Version,
        ),
        (
            "000-12345678901234567890123456789012-1234567890123456-01",
            E::Separator,
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-01-",
            E::Length(56),
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-01-00",
            E::Length(58),
        ),
        (
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            E::Trailing,
        ),
        (
            "00-00000000000000000000000000000000-1234567890123456-01",
            E::ZeroTraceId,
        ),
        (
            "00-.2345678901234567890123456789012-1234567890123456-01",
            E::TraceId,
        ),
        (
            "00-1234567890123456789012345678901.-1234567890123456-01",
            E::TraceId,
        ),
        (
            "00-1234567890123456789012345678901A-1234567890123456-01",
            E::TraceId,
        ),
        (
            "00-123456789012345678901234567890123-1234567890123456-01",
            E::Separator,
        ),
        (
            "00-1234567890123456789012345678901-1234567890123456-01",
            E::Length(54),
        ),
        (
            "00-12345678901234567890123456789012-0000000000000000-01",
            E::ZeroParentId,
        ),
        (
            "00-12345678901234567890123456789012-.234567890123456-01",
            E::ParentId,
        ),
        (
            "00-12345678901234567890123456789012-123456789012345.-01",
            E::ParentId,
        ),
        (
            "00-12345678901234567890123456789012-123456789012345A-01",
            E::ParentId,
        ),
        (
            "00-12345678901234567890123456789012-12345678901234567-01",
            E::Separator,
        ),
        (
            "00-12345678901234567890123456789012-123456789012345-01",
            E::Length(54),
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-.0",
            E::Flags,
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-0.",
            E::Flags,
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-0A",
            E::Flags,
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-001",
            E::Length(56),
        ),
        (
            "00-12345678901234567890123456789012-1234567890123456-0",
            E::Length(54),
        ),
        (
            "00_12345678901234567890123456789012_1234567890123456_01",
            E::Separator,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(tp(input), Err(*want), "{input:?}");
    }
    let huge = "0".repeat(MAX_HEADER_LEN + 1);
    assert_eq!(tp(&huge), Err(E::Length(huge.len())));
}

#[test]
fn traceparent_writes_exactly() {
    let t = tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
    assert_eq!(
        t.to_header(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
    );
    // A higher version is written as 00 with only the known parts.
    let t = tp(&format!("cc-{TID}-1234567890123456-01-extra")).unwrap();
    assert_eq!(t.to_string(), format!("00-{TID}-1234567890123456-01"));
}

#[test]
fn tracestate_table() {
    let parse = |v: &[&str]| TraceStateList::parse(v.iter().copied());
    let keys = |v: &[&str]| {
        parse(v)
            .unwrap()
            .members()
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };

    assert_eq!(
        keys(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]),
        ["rojo", "congo"]
    );
    assert_eq!(
        keys(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
        ["foo", "bar", "rojo", "congo", "baz"]
    );
    assert_eq!(keys(&["foo=1 \t , \t bar=2"]), ["foo", "bar"]);
    assert_eq!(keys(&["\t foo=1 \t"]), ["foo"]);
    assert_eq!(keys(&[",,foo=1,, ,"]), ["foo"]);
    assert_eq!(keys(&[""]), Vec::<String>::new());
    // Duplicates: the first is kept.
    assert_eq!(parse(&["foo=1,foo=2"]).unwrap().get("foo"), Some("1"));
    assert_eq!(parse(&["foo=1", "foo=2"]).unwrap().members().len(), 1);
    // Keys: lowercase, digits, _ - * / @, first a letter or digit, at most 256.
    assert_eq!(keys(&["foo@=1,bar=2"]), ["foo@", "bar"]);
    assert_eq!(
        keys(&["foo@@bar=1,foo@bar@baz=2,0abc=3,a_-*/z=4"]),
        ["foo@@bar", "foo@bar@baz", "0abc", "a_-*/z"]
    );
    let key256 = "z".repeat(256);
    assert_eq!(
        keys(&["foo=1", &format!("{key256}=1")]),
        ["foo", key256.as_str()]
    );
    // Values: printable ASCII without , and =, not ending in a space, 1..=256.
    let all_chars: String = (0x20u8..=0x7e)
        .filter(|c| *c != b',' && *c != b'=')
        .map(char::from)
        .collect();
    let value = all_chars.trim_end().to_string();
    assert_eq!(
        parse(&[&format!("k={value}")]).unwrap().get("k"),
        Some(value.as_str())
    );
    assert!(parse(&[&format!("k={}", "v".repeat(256))]).is_ok());

    use TraceStateError as E;
    let bad: &[(&[&str], E)] = &[
        (&["foo =1"], E::Key(1)),
        (&["FOO=1"], E::Key(1)),
        (&["foo.bar=1"], E::Key(1)),
        (&["@foo=1,bar=2"], E::Key(1)),
        (&["bar=2,@foo=1"], E::Key(2)),
        (&["foo=1", &format!("{}=1", "z".repeat(257))], E::Key(2)),
        (&["foo=bar=baz"], E::Value(1)),
        (&["foo=,bar=3"], E::Value(1)),
        (&[&format!("k={}", "v".repeat(257))], E::Value(1)),
        (&["k=a\u{7f}"], E::Value(1)),
        (&["k=é"], E::Value(1)),
        (&["novalue"], E::Member(1)),
    ];
    for (input, want) in bad {
        assert_eq!(parse(input), Err(*want), "{input:?}");
    }
    // 32 members are fine, 33 discard the list.
    let members: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    assert_eq!(
        parse(&[&members[..32].join(",")]).unwrap().members().len(),
        32
    );
    assert_eq!(parse(&[&members.join(",")]), Err(E::TooManyMembers));
    assert_eq!(parse(&[&"a=b,".repeat(3000)]), Err(E::TooLong));
}

#[test]
fn tracestate_upsert_moves_to_front_and_truncates() {
    let mut list = TraceStateList::parse(["rojo=1,congo=2,faultline=old"]).unwrap();
    list.upsert("faultline", "new").unwrap();
    assert_eq!(list.to_header(), "faultline=new,rojo=1,congo=2");
    assert!(list.upsert("Bad", "x").is_err());
    assert!(list.upsert("ok", "bad=").is_err());

    // Over 512 characters: members over 128 characters go first, from the end.
    let long1 = format!("long1={}", "a".repeat(200));
    let long2 = format!("long2={}", "b".repeat(200));
    let shorts: Vec<String> = (0..20)
        .map(|i| format!("s{i:02}={}", "c".repeat(10)))
        .collect();
    let header = format!("{long1},{},{long2}", shorts.join(","));
    let list = TraceStateList::parse([header.as_str()]).unwrap();
    let out = list.to_header();
    assert!(out.len() <= MAX_TRACESTATE_LEN, "{}", out.len());
    assert!(!out.contains("long2"), "the last long member goes first");
    assert!(out.contains("long1") || !out.contains("s19"));
    assert!(out.starts_with("long1=") || out.starts_with("s00="));
    // Without long members, members go from the end.
    let shorts: Vec<String> = (0..32)
        .map(|i| format!("s{i:02}={}", "c".repeat(20)))
        .collect();
    let list = TraceStateList::parse([shorts.join(",").as_str()]).unwrap();
    let out = list.to_header();
    assert!(out.len() <= MAX_TRACESTATE_LEN);
    assert!(out.starts_with("s00="));
    assert!(!out.contains("s31="));
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn extract(pairs: &[(&str, &str)]) -> Context {
    TraceContextPropagator.extract(&headers(pairs), &Context::new())
}

fn inject(cx: &Context) -> HeaderMap {
    let mut out = HeaderMap::new();
    TraceContextPropagator.inject(cx, &mut out);
    out
}

#[test]
fn extract_rules() {
    let tp0 = format!("00-{TID}-1234567890123456-01");
    let cx = extract(&[("traceparent", &tp0), ("tracestate", "foo=1,bar=2")]);
    let sc = cx.span().span_context().clone();
    assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
    // The list travels in the context (see `tracestate_header`), not in the span context.
    assert_eq!(tracestate_header(&cx), Some("foo=1,bar=2"));
    assert!(sc.trace_state().header().is_empty());
    assert_eq!(incoming_tracestate(&cx).unwrap().get("bar"), Some("2"));

    // Header names are case-insensitive.
    assert!(
        extract(&[("TraceParent", &tp0)])
            .span()
            .span_context()
            .is_valid()
    );
    // A repeated traceparent is refused, even when both copies agree.
    assert!(
        !extract(&[("traceparent", &tp0), ("traceparent", &tp0)])
            .span()
            .span_context()
            .is_valid()
    );
    // An invalid traceparent takes the tracestate with it.
    let cx = extract(&[("traceparent", "00-zz"), ("tracestate", "foo=1")]);
    assert!(!cx.span().span_context().is_valid());
    assert!(incoming_tracestate(&cx).is_none());
    // tracestate without traceparent is ignored.
    assert!(incoming_tracestate(&extract(&[("tracestate", "foo=1")])).is_none());
    // An invalid tracestate is dropped whole; the traceparent stays.
    let cx = extract(&[("traceparent", &tp0), ("tracestate", "foo=1,@bad=2")]);
    assert!(cx.span().span_context().is_valid());
    assert!(incoming_tracestate(&cx).is_none());
    assert!(cx.span().span_context().trace_state().header().is_empty());
    // Non-UTF-8 traceparent bytes: ignored, never a panic.
    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        http::HeaderValue::from_bytes(b"00-\xff\xfe").unwrap(),
    );
    assert!(
        !TraceContextPropagator
            .extract(&h, &Context::new())
            .span()
            .span_context()
            .is_valid()
    );
}

#[test]
fn inject_passes_tracestate_on_exactly() {
    let tp0 = format!("00-{TID}-1234567890123456-00");
    // Keys OpenTelemetry's TraceState refuses are still passed on.
    let cx = extract(&[
        ("traceparent", &tp0),
        ("tracestate", "foo@@bar=1, bar=2"),
        ("tracestate", "t@vvvvvvvvvvvvvvv=3"),
    ]);
    let out = inject(&cx);
    assert_eq!(out["traceparent"], tp0.as_str());
    assert_eq!(out["tracestate"], "foo@@bar=1,bar=2,t@vvvvvvvvvvvvvvv=3");
    // Nothing to write without a valid span.
    assert!(inject(&Context::new()).is_empty());
}

#[test]
fn own_member_goes_first_when_the_span_state_changes() {
    let tp0 = format!("00-{TID}-1234567890123456-01");
    let cx = extract(&[
        ("traceparent", &tp0),
        ("tracestate", "rojo=1,weird@@key=2,fl=old"),
    ]);
    let sc = cx.span().span_context().clone();
    let updated = sc.trace_state().insert("fl", "new").unwrap();
    let child = SpanContext::new(
        sc.trace_id(),
        SpanId::from(7),
        sc.trace_flags(),
        false,
        updated,
    );
    let cx = cx.with_remote_span_context(child);
    let out = inject(&cx);
    assert_eq!(out["tracestate"], "fl=new,rojo=1,weird@@key=2");
    assert_eq!(
        out["traceparent"],
        format!("00-{TID}-0000000000000007-01").as_str()
    );
}

#[test]
fn the_service_sets_its_own_member_first() {
    let tp0 = format!("00-{TID}-1234567890123456-01");
    let cx = extract(&[
        ("traceparent", &tp0),
        ("tracestate", "rojo=1,fl=old,congo=2"),
    ]);
    let cx = set_tracestate_member(&cx, "fl", "new").unwrap();
    assert_eq!(inject(&cx)["tracestate"], "fl=new,rojo=1,congo=2");
    assert!(set_tracestate_member(&cx, "Bad Key", "x").is_err());
    // Without an incoming list, the member starts one.
    let cx = extract(&[("traceparent", &tp0)]);
    let cx = set_tracestate_member(&cx, "fl", "v").unwrap();
    assert_eq!(inject(&cx)["tracestate"], "fl=v");
}

#[test]
fn random_flag_survives_an_unsampled_child() {
    // The SDK gives a span it does not sample default flags; the incoming
    // random flag must still go out.
    let cx = extract(&[("traceparent", &format!("00-{TID}-1234567890123456-02"))]);
    let sc = cx.span().span_context().clone();
    let child = SpanContext::new(
        sc.trace_id(),
        SpanId::from(5),
        TraceFlags::default(),
        false,
        TraceState::NONE,
    );
    let out = inject(&cx.with_remote_span_context(child));
    assert_eq!(
        out["traceparent"],
        format!("00-{TID}-0000000000000005-02").as_str()
    );
}

#[test]
fn random_flag_is_propagated() {
    let cx = extract(&[("traceparent", &format!("00-{TID}-1234567890123456-02"))]);
    let out = inject(&cx);
    assert!(out["traceparent"].to_str().unwrap().ends_with("-02"));
    assert_eq!(
        traceresponse(cx.span().span_context()).unwrap(),
        format!("00-{TID}-1234567890123456-02")
    );
}

fn id128() -> impl Strategy<Value = u128> {
    1u128..=u128::MAX
}

proptest! {
    #[test]
    fn written_traceparent_is_the_ids_in_lowercase_hex(trace in any::<u128>(), span in any::<u64>(), flags in any::<u8>()) {
        let tp = TraceParent {
            version: 0,
            trace_id: TraceId::from(trace),
            parent_id: SpanId::from(span),
            flags: TraceFlags::new(flags),
        };
        let value = tp.to_header_value();
        prop_assert_eq!(
            value.to_str().unwrap(),
            format!("00-{trace:032x}-{span:016x}-{:02x}", flags & 0x03)
        );
        prop_assert_eq!(tp.to_header(), format!("00-{trace:032x}-{span:016x}-{:02x}", flags & 0x03));
    }

    #[test]
    fn inject_then_extract_round_trips(trace in id128(), span in 1u64..=u64::MAX, flags in 0u8..=3) {
        let sc = SpanContext::new(TraceId::from(trace), SpanId::from(span), TraceFlags::new(flags), false, TraceState::NONE);
        let cx = Context::new().with_remote_span_context(sc);
        let out = inject(&cx);
        let back = TraceContextPropagator.extract(&out, &Context::new());
        let got = back.span().span_context().clone();
        prop_assert_eq!(got.trace_id(), TraceId::from(trace));
        prop_assert_eq!(got.span_id(), SpanId::from(span));
        prop_assert_eq!(got.trace_flags().to_u8(), flags);
    }

    #[test]
    fn tracestate_round_trips(members in proptest::collection::vec(("[a-z][a-z0-9_*/-]{0,20}", "[!-+.-<>-~]{1,30}"), 0..32)) {
        let header = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        prop_assume!(header.len() <= MAX_TRACESTATE_LEN);
        let list = TraceStateList::parse([header.as_str()]).unwrap();
        let again = TraceStateList::parse([list.to_header().as_str()]).unwrap();
        prop_assert_eq!(list, again);
    }

    /// A value taken as it arrived is exactly what the parser would have
    /// made of it; and the parser's output is always taken as it is.
    #[test]
    fn normalized_tracestate_needs_no_rewrite(s in "[a-z0-9=, @_*/!-]{0,60}") {
        let mut parser = TraceStateParser::default();
        parser.feed(&s);
        let parsed = parser.finish();
        if is_normalized_tracestate(&s) {
            prop_assert_eq!(parsed.as_deref(), Ok(s.as_str()));
        }
        if let Ok(out) = parsed {
            prop_assert!(out.is_empty() || is_normalized_tracestate(&out), "{:?} -> {:?}", s, out);
        }
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,120}") {
        let _ = TraceParent::parse(&s);
        let _ = TraceStateList::parse([s.as_str()]);
    }
}

#[test]
fn normalized_tracestate_table() {
    for ok in [
        "a=1",
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        "t@sys=x y",
        "a=1,b=2",
    ] {
        assert!(is_normalized_tracestate(ok), "{ok:?}");
    }
    for not in [
        "", "a=1,", ",a=1", "a=1 ,b=2", "a=1, b=2", " a=1", "a=1 ", "a=1,,b=2", "a=1,a=2", "A=1",
        "a=", "a", "a=1=2", "a=\t", "a=1\tb",
    ] {
        assert!(!is_normalized_tracestate(not), "{not:?}");
    }
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert!(is_normalized_tracestate(&many[..32].join(",")));
    assert!(!is_normalized_tracestate(&many.join(",")));
}

#[test]
fn a_normalized_tracestate_is_passed_on_as_it_arrived() {
    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        format!("00-{TID}-1234567890123456-01").parse().unwrap(),
    );
    incoming.insert(
        "tracestate",
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".parse().unwrap(),
    );
    let cx = TraceContextPropagator.extract(&incoming, &Context::new());
    assert_eq!(
        tracestate_header(&cx),
        Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
    );
    let out = inject(&cx);
    assert_eq!(
        out.get("tracestate").unwrap(),
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    // Not normalized: rewritten.
    incoming.insert(
        "tracestate",
        " congo=t61rcWkgMzE , ,rojo=1,congo=2".parse().unwrap(),
    );
    let cx = TraceContextPropagator.extract(&incoming, &Context::new());
    assert_eq!(tracestate_header(&cx), Some("congo=t61rcWkgMzE,rojo=1"));
    // Two headers: one list.
    incoming.append("tracestate", "x=1".parse().unwrap());
    let cx = TraceContextPropagator.extract(&incoming, &Context::new());
    assert_eq!(tracestate_header(&cx), Some("congo=t61rcWkgMzE,rojo=1,x=1"));
}

#[test]
fn hex_words_match_the_obvious_parse() {
    for text in [
        "0000000000000000",
        "ffffffffffffffff",
        "0123456789abcdef",
        "fedcba9876543210",
        "00f067aa0ba902b7",
    ] {
        assert_eq!(
            hex_u64(text.as_bytes()),
            u64::from_str_radix(text, 16).ok(),
            "{text}"
        );
    }
    // Every byte value at every position: only 0-9 and a-f are digits.
    for pos in 0..16 {
        for byte in 0..=255u8 {
            let mut text = *b"0123456789abcdef";
            text[pos] = byte;
            let expected = if byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte) {
                let s = std::str::from_utf8(&text).unwrap();
                u64::from_str_radix(s, 16).ok()
            } else {
                None
            };
            assert_eq!(hex_u64(&text), expected, "byte {byte:#04x} at {pos}");
        }
    }
    assert_eq!(hex_u64(b"0123456789abcde"), None);
}
