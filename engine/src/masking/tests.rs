//! Unit tests of the maskers: table-driven, one table per rule.

use super::*;

fn masker() -> BasicMasker {
    let config = TracingConfig::builder()
        .secret_key("x-tenant-token")
        .redact_header("x-internal-auth")
        .pii_pattern_with("order", r"ORD-(\d{2})\d{6}", "ORD-$1******")
        .pii_pattern("badge", r"BADGE-[A-Z]{4}")
        .build()
        .unwrap();
    BasicMasker::from_config(&config)
}

#[test]
fn secret_keys_match_whole_and_dotted_case_insensitive() {
    let m = masker();
    for key in [
        "password",
        "PASSWORD",
        "user.password",
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "http.request.header.x-api-key",
        "http.request.header.proxy-authorization",
        "x-tenant-token",
        "http.request.header.x-internal-auth",
    ] {
        assert!(m.is_secret_key(key), "{key} should be secret");
    }
    for key in [
        "passwords_changed",
        "user.email",
        "tokenizer.kind",
        "http.route",
    ] {
        assert!(!m.is_secret_key(key), "{key} should not be secret");
    }
    assert_eq!(m.mask_value("user.password", "hunter2"), REDACTED);
}

#[test]
fn custom_patterns_replace_and_borrow_when_clean() {
    let m = masker();
    assert_eq!(
        m.mask("order ORD-12345678 shipped"),
        "order ORD-12****** shipped"
    );
    assert_eq!(
        m.mask("BADGE-ABCD and ORD-99000000"),
        "[REDACTED] and ORD-99******"
    );
    assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
    // Stable: masking twice changes nothing more.
    let once = m.mask("ORD-12345678").into_owned();
    assert_eq!(m.mask(&once), once);
}

#[test]
fn no_masker_is_identity() {
    assert_eq!(NoMasker.mask("a@b.c"), "a@b.c");
    assert!(!NoMasker.is_secret_key("password"));
}
