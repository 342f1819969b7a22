//! Unit tests of the maskers: table-driven, one table per rule.

use super::*;
use crate::masking::numbers;

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

// ---------------------------------------------------------------------------
// PiiMasker
// ---------------------------------------------------------------------------

fn pii() -> PiiMasker {
    PiiMasker::default()
}

/// Masks `input`, checks the result, that masking it again changes nothing,
/// and that a borrowed result means "unchanged".
fn check(m: &PiiMasker, input: &str, want: &str) {
    let once = m.mask(input);
    assert_eq!(once, want, "masking {input:?}");
    if input == want {
        assert!(matches!(once, Cow::Borrowed(_)), "{input:?} was copied");
    }
    let twice = m.mask(&once);
    assert_eq!(twice, once, "masking {input:?} twice");
    assert!(
        matches!(twice, Cow::Borrowed(_)),
        "{input:?}: second pass copied"
    );
}

fn check_table(m: &PiiMasker, table: &[(&str, &str)]) {
    for (input, want) in table {
        check(m, input, want);
    }
}

fn check_unchanged(m: &PiiMasker, table: &[&str]) {
    for input in table {
        check(m, input, input);
    }
}

#[test]
fn emails() {
    check_table(
        &pii(),
        &[
            ("jane.doe@example.com", "j***@example.com"),
            (
                "contact John.Smith+tag@mail.example.co.uk.",
                "contact J***@mail.example.co.uk.",
            ),
            ("<alice@example.org>", "<a***@example.org>"),
            ("mailto:carol@example.net", "mailto:c***@example.net"),
            (
                r#"{"email":"dave_99@example.io"}"#,
                r#"{"email":"d***@example.io"}"#,
            ),
            ("email=bob%40example.com&x=1", "email=b***@example.com&x=1"),
            ("5551234567@sms.example.com", "5***@sms.example.com"),
            ("x@example.com", "x***@example.com"),
            ("a@b.co and c@d.org", "a***@b.co and c***@d.org"),
            ("MIXED.Case@Example.COM", "M***@Example.COM"),
            (r"line\njohn@example.com", r"line\n***@example.com"),
        ],
    );
}

#[test]
fn not_emails() {
    check_unchanged(
        &pii(),
        &[
            "@mention in a comment",
            "user@localhost",
            "lodash@4.17.21",
            "icon@2x.png",
            "a@b",
            "git show HEAD@{1}",
            "j***@example.com",
            "@example.com",
            "foo@bar.123",
        ],
    );
}

#[test]
fn phones() {
    check_table(
        &pii(),
        &[
            ("+4915112345678", "***-***-5678"),
            ("call +49 151 12345678 now", "call ***-***-5678 now"),
            ("+44 20 7946 0958", "***-***-0958"),
            ("+33 1 23 45 67 89", "***-***-6789"),
            ("+1 (555) 123-4567", "***-***-4567"),
            ("+1-555-123-4567", "***-***-4567"),
            ("+1.555.123.4567", "***-***-4567"),
            ("(555) 123-4567", "***-***-4567"),
            ("(555)123-4567", "***-***-4567"),
            ("555-123-4567", "***-***-4567"),
            ("555.123.4567", "***-***-4567"),
            ("tel 555 123 4567", "tel ***-***-4567"),
            ("1-800-555-1234", "***-***-1234"),
            ("1 (555) 123-4567", "***-***-4567"),
            ("phone=%2B4915112345678", "phone=***-***-5678"),
            (r#"{"phone": "5551234567"}"#, r#"{"phone": "***-***-4567"}"#),
            (
                r#"{"mobilePhone":"015112345678"}"#,
                r#"{"mobilePhone":"***-***-5678"}"#,
            ),
            ("mobile: 0151 12345678", "mobile: ***-***-5678"),
            ("Phone number 5551234567", "Phone number ***-***-4567"),
            ("Phone No. 5551234567", "Phone No. ***-***-4567"),
            ("contact_phone=030-1234567", "contact_phone=***-***-4567"),
            (
                "(555) 123-4567, (555) 987-6543",
                "***-***-4567, ***-***-6543",
            ),
        ],
    );
}

#[test]
fn not_phones() {
    check_unchanged(
        &pii(),
        &[
            "offset +0100",
            "tz +05:30",
            "2026-11-26T10:15:30+0000",
            "1.5e+10",
            "10.0.0.1",
            "192.168.100.200",
            "call 555-1234",
            "555-123-45678",
            "5551234567",
            "order 5551234567",
            "v555.123.4567",
            "555-123-4567x",
            "a555-123-4567",
            "2026-11-26 10:15:30",
            "+2026-11-26",
            "1+4915112345678",
            "0.5551234567",
        ],
    );
}

#[test]
fn cards() {
    check_table(
        &pii(),
        &[
            ("4111111111111111", "****-****-****-1111"),
            (
                "card 4111 1111 1111 1111 exp 12/27",
                "card ****-****-****-1111 exp 12/27",
            ),
            ("4111-1111-1111-1111", "****-****-****-1111"),
            ("4222222222222", "****-****-****-2222"),
            ("5555555555554444", "****-****-****-4444"),
            ("5105 1051 0510 5100", "****-****-****-5100"),
            ("2221000000000009", "****-****-****-0009"),
            ("2720990000000007", "****-****-****-0007"),
            ("378282246310005", "****-****-****-0005"),
            ("3782 822463 10005", "****-****-****-0005"),
            ("30569309025904", "****-****-****-5904"),
            ("36227206271667", "****-****-****-1667"),
            ("3530111333300000", "****-****-****-0000"),
            ("6011111111111117", "****-****-****-1117"),
            ("6011 0009 9013 9424", "****-****-****-9424"),
            ("6221260000000000", "****-****-****-0000"),
            ("6200000000000000000", "****-****-****-0000"),
            ("6759649826438453", "****-****-****-8453"),
            ("501800000009", "****-****-****-0009"),
            ("2200123456789019", "****-****-****-9019"),
            ("card=4111111111111111&x=1", "card=****-****-****-1111&x=1"),
            (
                "/orders/4111111111111111/refund",
                "/orders/****-****-****-1111/refund",
            ),
            ("ORD-4111111111111111", "ORD-****-****-****-1111"),
            ("paid 12 4111 1111 1111 1111", "paid 12 ****-****-****-1111"),
            (r"a\n4111111111111111", r"a\n****-****-****-1111"),
            ("card%3D4111111111111111", "card%3D****-****-****-1111"),
            (
                r#"{"pan":"5555555555554444"}"#,
                r#"{"pan":"****-****-****-4444"}"#,
            ),
        ],
    );
}

#[test]
fn not_cards() {
    check_unchanged(
        &pii(),
        &[
            "4111111111111112",
            "4111 1111 1111 1112",
            "1732612345678",
            "ts=1732612345678901",
            "1234567890123452",
            "7992739871300008",
            "8123456789012340",
            "9123456789012348",
            "0.4111111111111111",
            "3.14159265358979",
            "4111111111111111abc",
            "a4111111111111111",
            "trace_id=4111111111111111",
            "dd.span_id=6011111111111117",
            "orderId: 5555555555554444",
            "offset=603596844978",
            "bytes 6011111111111117",
            "duration_ns=5555555555554444",
            "12345678-1234-1234-1234-123456789012",
            "123e4567-e89b-12d3-a456-426614174000",
            "v4111111111111111",
            "1,234,567,890,123",
            "4111111111111111.json",
            "41111111111111",
            "3782822463100050",
            "5105105105105",
        ],
    );
}

#[test]
fn ssns_and_tax_ids() {
    check_table(
        &pii(),
        &[
            ("123-45-6789", "***-**-****"),
            ("123 45 6789", "***-**-****"),
            ("SSN: 123-45-6789", "SSN: ***-**-****"),
            ("ssn 123 45 6789 on file", "ssn ***-**-**** on file"),
            ("SSN #123456789", "SSN #***-**-****"),
            ("ssn 123456789", "ssn ***-**-****"),
            ("tax id: 123456789", "tax id: ***-**-****"),
            (
                "social security number 123456789",
                "social security number ***-**-****",
            ),
            ("ITIN 912-70-1234", "ITIN ***-**-****"),
            ("EIN 12-3456789", "EIN ***-**-****"),
            ("12-3456789", "***-**-****"),
            (r#"{"taxId":"123456789"}"#, r#"{"taxId":"***-**-****"}"#),
        ],
    );
}

#[test]
fn not_ssns() {
    check_unchanged(
        &pii(),
        &[
            "000-12-3456",
            "123-00-6789",
            "123-45-0000",
            "123-45-67890",
            "1123-45-6789",
            "123456789",
            "order 123456789",
            "2026-11-26",
            "12-34567890",
            "00-1234567",
            "a123-45-6789",
            "123-45-6789b",
        ],
    );
}

// ---------------------------------------------------------------------------
// Where a number ends: punctuation after the last digit (issue 19)
// ---------------------------------------------------------------------------

/// What may follow an item at the end of a sentence or a clause.
const PUNCTUATION: [char; 9] = ['.', ',', ';', ':', '!', '?', ')', '"', '\''];

/// Every kind and separator form, with its mask.
const ITEMS: &[(&str, &str)] = &[
    // Cards of every brand and length, plain.
    ("4111111111111111", "****-****-****-1111"),
    ("4222222222222", "****-****-****-2222"),
    ("6200000000000000000", "****-****-****-0000"),
    ("5555555555554444", "****-****-****-4444"),
    ("2221000000000009", "****-****-****-0009"),
    ("2200123456789019", "****-****-****-9019"),
    ("378282246310005", "****-****-****-0005"),
    ("30569309025904", "****-****-****-5904"),
    ("3530111333300000", "****-****-****-0000"),
    ("6011111111111117", "****-****-****-1117"),
    ("6221260000000000", "****-****-****-0000"),
    ("501800000009", "****-****-****-0009"),
    // Cards with spaces and with dashes.
    ("4111 1111 1111 1111", "****-****-****-1111"),
    ("4111-1111-1111-1111", "****-****-****-1111"),
    ("3782 822463 10005", "****-****-****-0005"),
    ("3782-822463-10005", "****-****-****-0005"),
    ("6011 0009 9013 9424", "****-****-****-9424"),
    ("5018 0000 0009", "****-****-****-0009"),
    // Phones in every form.
    ("555-123-4567", "***-***-4567"),
    ("555.123.4567", "***-***-4567"),
    ("555 123 4567", "***-***-4567"),
    ("(555) 123-4567", "***-***-4567"),
    ("1-800-555-1234", "***-***-1234"),
    ("+4915112345678", "***-***-5678"),
    ("+44 20 7946 0958", "***-***-0958"),
    ("+1-555-123-4567", "***-***-4567"),
    ("phone 5551234567", "phone ***-***-4567"),
    ("mobile: 015112345678", "mobile: ***-***-5678"),
    // SSNs and tax ids.
    ("123-45-6789", "***-**-****"),
    ("123 45 6789", "***-**-****"),
    ("12-3456789", "***-**-****"),
    ("SSN 123456789", "SSN ***-**-****"),
    // Emails, A-label domains, deep subdomains, one-letter local parts.
    ("jane.doe@example.com", "j***@example.com"),
    ("b@xn--80ak6aa92e.xn--p1ai", "b***@xn--80ak6aa92e.xn--p1ai"),
    ("a@b.example", "a***@b.example"),
    (
        "ops@eu.west.mail.corp.example.co.uk",
        "o***@eu.west.mail.corp.example.co.uk",
    ),
];

#[test]
fn punctuation_after_the_last_digit_ends_the_number() {
    let m = pii();
    for (item, mask) in ITEMS {
        for p in PUNCTUATION {
            for (before, after) in [("", ""), ("see ", ""), ("Note: ", " Next one"), ("(", "\n")] {
                let input = format!("{before}{item}{p}{after}");
                let want = format!("{before}{mask}{p}{after}");
                check(&m, &input, &want);
            }
        }
    }
}

#[test]
fn a_decimal_point_is_a_dot_before_a_digit() {
    check_table(
        &pii(),
        &[
            (
                "Card on file is 4111111111111111.",
                "Card on file is ****-****-****-1111.",
            ),
            (
                "Amex 378282246310005. Thanks",
                "Amex ****-****-****-0005. Thanks",
            ),
            ("(4111111111111111)", "(****-****-****-1111)"),
            ("phone (5551234567)", "phone (***-***-4567)"),
            ("SSN 123456789.", "SSN ***-**-****."),
            (
                "cards 4111111111111111, 5555555555554444.",
                "cards ****-****-****-1111, ****-****-****-4444.",
            ),
        ],
    );
    check_unchanged(
        &pii(),
        &[
            "0.4111111111111111",
            "4111111111111111.5",
            "4111111111111111.25 EUR",
            "ratio 5551234567.0",
            "4111111111111111.json",
            "4111111111111111-v2",
            "3.14159265358979.",
            "took 1732612345678.",
            "10.0.0.1.",
            "v1.2.3.",
        ],
    );
}

#[test]
fn a_label_domains_are_domains() {
    check_table(
        &pii(),
        &[
            (
                "contact=b@xn--80ak6aa92e.xn--p1ai",
                "contact=b***@xn--80ak6aa92e.xn--p1ai",
            ),
            ("jane@xn--bcher-kva.example", "j***@xn--bcher-kva.example"),
            ("jane@mail.xn--mller-kva.de", "j***@mail.xn--mller-kva.de"),
            ("x@XN--P1AI.XN--P1AI", "x***@XN--P1AI.XN--P1AI"),
            ("write to a@b.example.", "write to a***@b.example."),
            ("a@b.c.d.e.f.example.org", "a***@b.c.d.e.f.example.org"),
            (
                "b%40xn--80ak6aa92e.xn--p1ai",
                "b***@xn--80ak6aa92e.xn--p1ai",
            ),
        ],
    );
    check_unchanged(
        &pii(),
        &[
            "a@b.xn--",
            "a@b.xn-",
            "a@b.xn--p1ai-",
            "pkg@1.2.3",
            "a@xn--p1ai",
        ],
    );
}

#[test]
fn no_card_on_a_prefix_of_a_longer_number() {
    // 12 digits that pass Luhn as a Maestro card, then a fourth group:
    // 16 digits that fail it.
    assert!(numbers::is_card(b"501800000009"));
    assert!(!numbers::luhn_valid(b"5018000000091234"));
    check_unchanged(
        &pii(),
        &[
            "5018 0000 0009 1234",
            "5018-0000-0009-1234",
            "ref 5018 0000 0009 1234.",
        ],
    );
    check_table(
        &pii(),
        &[
            // The whole number is a card: masked whole.
            ("5018 0000 0009", "****-****-****-0009"),
            // What follows is no group of four: an expiry, a code.
            ("4111 1111 1111 1111 12", "****-****-****-1111 12"),
            ("4111 1111 1111 1111 123", "****-****-****-1111 123"),
            // Past 19 digits nothing is one card number.
            ("4111 1111 1111 1111 2027", "****-****-****-1111 2027"),
            // Two cards side by side.
            (
                "4111 1111 1111 1111 5555 5555 5555 4444",
                "****-****-****-1111 ****-****-****-4444",
            ),
        ],
    );
}

#[test]
fn custom_patterns_before_punctuation() {
    let m = with_custom_patterns();
    for p in PUNCTUATION {
        check(
            &m,
            &format!("badge EMP-123456{p}"),
            &format!("badge EMP-******{p}"),
        );
        check(
            &m,
            &format!("to DE89370400440532013000{p} ok"),
            &format!("to [REDACTED]{p} ok"),
        );
    }
}

#[test]
fn secret_pairs_in_text() {
    check_table(
        &pii(),
        &[
            ("password=hunter2", "password=[REDACTED]"),
            (
                "login user=bob password=hunter2 ok",
                "login user=bob password=[REDACTED] ok",
            ),
            (r#"{"token":"abc"}"#, r#"{"token":"[REDACTED]"}"#),
            (
                r#"{"password": "p@ss w0rd", "user": "bob"}"#,
                r#"{"password": "[REDACTED]", "user": "bob"}"#,
            ),
            (
                r#"{"apiKey": 12345, "n": 1}"#,
                r#"{"apiKey": "[REDACTED]", "n": 1}"#,
            ),
            (r#"{"secret": null}"#, r#"{"secret": null}"#),
            (
                r#"{"session": {"id": "s1"}, "ok": true}"#,
                r#"{"session": "[REDACTED]", "ok": true}"#,
            ),
            (
                r#"{"body":"{\"password\":\"hunter2\"}"}"#,
                r#"{"body":"{\"password\":\"[REDACTED]\"}"}"#,
            ),
            ("api_key=k-123&page=2", "api_key=[REDACTED]&page=2"),
            (
                "Server=db;User Id=sa;Password=hunter2;",
                "Server=db;User Id=sa;Password=[REDACTED];",
            ),
            ("db_password=x1 next", "db_password=[REDACTED] next"),
            ("--password=x1", "--password=[REDACTED]"),
            ("user[password]=x1", "user[password]=[REDACTED]"),
            ("password = 'two words'", "password = '[REDACTED]'"),
            ("authorization=Bearer abc.def", "authorization=[REDACTED]"),
            ("Authorization: Bearer abc.def", "Authorization: [REDACTED]"),
            (
                "headers: authorization: Basic dXNlcjpw",
                "headers: authorization: [REDACTED]",
            ),
            ("Cookie: session=abc; theme=dark", "Cookie: [REDACTED]"),
            ("X-Api-Key: k123\nnext", "X-Api-Key: [REDACTED]\nnext"),
            ("password: hunter2", "password: [REDACTED]"),
            (
                "login failed, password: hunter2",
                "login failed, password: [REDACTED]",
            ),
            (
                "user=bob password: hunter2",
                "user=bob password: [REDACTED]",
            ),
            ("token:abc123", "token:[REDACTED]"),
            ("user.password=x1 ok", "user.password=[REDACTED] ok"),
            (
                "http.request.header.authorization: Bearer abc",
                "http.request.header.authorization: [REDACTED]",
            ),
            ("accessToken=eyJhbGciOi.x.y", "accessToken=[REDACTED]"),
            (
                "postgres://app:s3cret@db.internal:5432/orders",
                "postgres://app:[REDACTED]@db.internal:5432/orders",
            ),
            (
                "https://bob:pw@example.com/x",
                "https://bob:[REDACTED]@example.com/x",
            ),
        ],
    );
}

#[test]
fn secret_words_in_prose_stay() {
    check_unchanged(
        &pii(),
        &[
            "please reset your password: the link expires in 10 minutes",
            "password reset requested for account 42",
            "the token expired at 10:15:30",
            "passwords_changed=3",
            "tokenizer=bpe",
            "max_tokens=512",
            "session started",
            "Your session: expired",
            // In text, the last segment of a key names its value.
            "password.reset_url=https://example.com/reset",
            "token_count=12 session_count=3",
            "password=[REDACTED]",
            r#"{"token":"[REDACTED]"}"#,
            "Authorization: [REDACTED]",
            "postgres://app:[REDACTED]@db.internal:5432/orders",
            "https://example.com:8443/path",
        ],
    );
}

/// The hard negatives of the issue: none of these may change.
#[test]
fn hard_negatives_stay_untouched() {
    check_unchanged(
        &pii(),
        &[
            // trace and span ids (hex and decimal), UUIDs, git hashes
            "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
            "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "dd.trace_id=5279802567389123456",
            "request 123e4567-e89b-12d3-a456-426614174000 done",
            "id=550e8400-e29b-41d4-a716-446655440000",
            "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
            "short sha 1a2b3c4",
            // timestamps, epochs
            "2026-11-26T10:15:30.123456789Z",
            "2026-11-26 10:15:30,123 INFO started",
            "Thu, 26 Nov 2026 10:15:30 GMT",
            "ts=1732612345678",
            "epoch_us=1732612345678901 epoch_ns=1732612345678901234",
            "26/11/2026 10:15",
            // versions, addresses, ports, codes
            "faultline 0.1.0 on rustc 1.95.0 (59807616e 2026-04-14)",
            "v2.14.3-rc.1+build.20261126",
            "peer 10.12.0.7:54321 -> 192.168.100.200:8080",
            "listening on [::1]:4317 and 0.0.0.0:4318",
            "fe80::1ff:fe23:4567:890a",
            "HTTP/1.1 503 Service Unavailable",
            "status=200 status_code=404",
            // durations, sizes, counts
            "took 1532ms (p99 2.5s, 0.000345s)",
            "duration_ns=123456789012",
            "bytes=1048576 total=5368709120 free=549755813888",
            "size 1,234,567,890 bytes",
            "processed 12345 of 67890 rows in 4.5 s",
            // order numbers, invoices, Luhn-invalid runs
            "order #100234 for 3 items",
            "order ORD-2026-004512 shipped",
            "invoice INV-20261126-0042",
            "ticket 4111111111111112",
            "ref 5555555555554445",
            "sku 0123456789012",
            "amount 1234.56 USD",
            "lat 52.520008 lon 13.404954",
            "pi 3.14159265358979323846",
            // prose with the word password
            "user changed their password successfully",
            "password policy: at least 12 characters",
            "Forgot password? Use the reset link.",
            // misc
            "GET /users/42 200 in 3.2 ms",
            "GET /api/v1/orders?page=2&per_page=50",
            "ratio 0.9998 over 123456789 samples",
            "memory 7.5GiB/16GiB",
            "build 20261126.1",
            "pid 12345 tid 67890",
            "etag W/\"5e8f-1a2b3c\"",
            "color #ff8800",
            "k8s pod checkout-7d9f8b6c5-x2x9z",
        ],
    );
}

#[test]
fn clean_text_is_borrowed() {
    assert_eq!(
        PiiMasker::new().mask("jane@example.com"),
        "j***@example.com"
    );
    let m = pii();
    for text in ["", "plain", "GET /users/{id}", "a=1&b=2", "10:15:30"] {
        assert!(matches!(m.mask(text), Cow::Borrowed(_)), "{text:?}");
    }
}

#[test]
fn pii_masker_secret_keys() {
    let config = TracingConfig::builder()
        .secret_key("x-tenant-token")
        .secret_key("pin")
        .secret_key("pw")
        .redact_header("x-internal-auth")
        .build()
        .unwrap();
    let m = PiiMasker::from_config(&config);
    for key in [
        "password",
        "PASSWORD",
        "passwd",
        "secret",
        "token",
        "api_key",
        "api-key",
        "authorization",
        "cookie",
        "set-cookie",
        "session",
        "ssn",
        "credit_card",
        "user.password",
        "http.request.header.authorization",
        "http.request.header.proxy-authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "http.request.header.x-api-key",
        "db_password",
        "accessToken",
        "x-auth-token",
        "stripe_api_key",
        "user_session",
        "customer-ssn",
        "user[password]",
        "x-tenant-token",
        "card.pin",
        "pw",
        "user.PW",
        "http.request.header.x-internal-auth",
    ] {
        assert!(m.is_secret_key(key), "{key} should be secret");
    }
    for key in [
        "passwords_changed",
        "user.email",
        "tokenizer.kind",
        "http.route",
        "max_tokens",
        "concession",
        "session_count",
        "url.query",
        "http.request.method",
        "pinned",
    ] {
        assert!(!m.is_secret_key(key), "{key} should not be secret");
    }
    assert_eq!(m.mask_value("user.password", "hunter2"), REDACTED);
    assert_eq!(m.mask_value("note", "jane@example.com"), "j***@example.com");
    // Configured headers are redacted to the end of the line in text.
    check(&m, "X-Internal-Auth: a b c", "X-Internal-Auth: [REDACTED]");
    check(&m, "pin=1234", "pin=[REDACTED]");
}

/// The built-in rules plus three custom patterns (orders, IBANs, employee ids).
fn with_custom_patterns() -> PiiMasker {
    let config = TracingConfig::builder()
        .pii_pattern_with("order", r"ORD-(\d{2})\d{6}", "ORD-$1******")
        .pii_pattern("iban", r"\bDE\d{20}\b")
        .pii_pattern_with("employee", r"EMP-\d{6}", "EMP-******")
        .build()
        .unwrap();
    PiiMasker::from_config(&config)
}

#[test]
fn custom_patterns_run_with_the_built_in_rules() {
    let m = with_custom_patterns();
    check(
        &m,
        "order ORD-12345678 shipped",
        "order ORD-12****** shipped",
    );
    check(
        &m,
        "to DE89370400440532013000 for jane@example.com",
        "to [REDACTED] for j***@example.com",
    );
    check(&m, "nothing here", "nothing here");
}

#[test]
fn mask_query_per_parameter() {
    let m = pii();
    let table = [
        ("page=2&sort=asc", "page=2&sort=asc"),
        ("token=abc&page=2", "token=[REDACTED]&page=2"),
        (
            "email=jane.doe%40example.com&x=1",
            "email=j***@example.com&x=1",
        ),
        ("phone=%2B4915112345678", "phone=***-***-5678"),
        ("q=card+4111+1111+1111+1111", "q=card%20****-****-****-1111"),
        ("api%5Fkey=k1", "api%5Fkey=[REDACTED]"),
        ("password=", "password="),
        ("", ""),
        // Keys and bare parameters are masked too; what is written back
        // is encoded again.
        ("jane%40example.com", "j***@example.com"),
        ("x=1&jane@example.com", "x=1&j***@example.com"),
        ("jane%40example.com=1&b=2", "j***@example.com=1&b=2"),
        ("q=a%26b+jane%40example.com", "q=a%26b%20j***@example.com"),
        ("q=%zz&e=jane%40example.com", "q=%zz&e=j***@example.com"),
    ];
    for (query, want) in table {
        let once = m.mask_query(query);
        assert_eq!(once, want, "{query}");
        assert_eq!(m.mask_query(&once), once, "{query} twice");
    }
    assert!(matches!(m.mask_query("page=2&sort=asc"), Cow::Borrowed(_)));
}

#[test]
fn query_strings_are_masked_per_parameter() {
    let config = TracingConfig::builder()
        .pii_pattern("acct", r"ACCT-\d+")
        .build()
        .unwrap();
    let m = BasicMasker::from_config(&config);
    assert!(matches!(
        mask_query(&m, "page=2&sort=asc"),
        Cow::Borrowed(_)
    ));
    assert_eq!(
        mask_query(&m, "token=abc&page=2"),
        "token=[REDACTED]&page=2"
    );
    assert_eq!(
        mask_query(&m, "page=2&api_key=k1&x=1"),
        "page=2&api_key=[REDACTED]&x=1"
    );
    assert_eq!(mask_query(&m, "a=ACCT-12&b=ok"), "a=[REDACTED]&b=ok");
    assert_eq!(mask_query(&m, "a=ACCT%2D12"), "a=[REDACTED]");
    assert_eq!(mask_query(&m, "password="), "password=");
    assert_eq!(mask_query(&m, "flag&token=t"), "flag&token=[REDACTED]");
    assert_eq!(mask_query(&m, ""), "");
    // What is written back reads as what was masked; what is not changed
    // stays as written.
    assert_eq!(
        mask_query(&m, "q=a%26b&token=t"),
        "q=a%26b&token=[REDACTED]"
    );
    assert_eq!(mask_query(&m, "a=ACCT-1&q=a%26b"), "a=[REDACTED]&q=a%26b");
    assert_eq!(mask_query(&m, "a=x&&b=ACCT-1&"), "a=x&&b=[REDACTED]&");
}

#[test]
fn keyed_hash_replaces_values_with_stable_tags() {
    let config = TracingConfig::builder()
        .pii_hash_key("0123456789abcdef-test-key")
        .build()
        .unwrap();
    let m = PiiMasker::from_config(&config);
    assert!(m.is_hashing());
    let a = m
        .mask("jane.doe@example.com bought with 4111 1111 1111 1111")
        .into_owned();
    let b = m
        .mask("JANE.DOE@example.com bought with 4111111111111111")
        .into_owned();
    assert_eq!(a, b, "the same values give the same tags");
    assert!(!a.contains("jane") && !a.contains("4111"), "{a}");
    let parts: Vec<&str> = a.split(' ').collect();
    assert!(
        parts[0].starts_with("email:hmac:") && parts[0].len() == 11 + 12,
        "{a}"
    );
    assert!(parts[3].starts_with("card:hmac:"), "{a}");
    // A different value, a different tag; the same number written two ways, one tag.
    assert_ne!(m.mask("john@example.com"), m.mask("jane.doe@example.com"));
    assert_eq!(m.mask("+1 (555) 123-4567"), m.mask("555-123-4567"));
    assert!(m.mask("123-45-6789").starts_with("ssn:hmac:"));
    // Secrets are still redacted, not hashed.
    assert_eq!(m.mask("password=hunter2"), "password=[REDACTED]");
    // Stable: tags are not masked again, whatever digits they hold.
    for text in [
        a.as_str(),
        "phone:hmac:555123456789",
        "card:hmac:601111111111",
    ] {
        assert_eq!(m.mask(text), text);
    }
    // Another key, other tags; the key is never printed.
    let other = pii().with_hash_key(b"another-key-of-16-bytes").unwrap();
    assert_ne!(
        other.mask("jane.doe@example.com"),
        m.mask("jane.doe@example.com")
    );
    assert!(!format!("{m:?}").contains("0123456789abcdef"));
    assert!(!format!("{config:?}").contains("0123456789abcdef"));
    let err = pii().with_hash_key(b"short").unwrap_err().to_string();
    assert!(err.contains("at least 16 bytes"), "{err}");
}

/// Inputs the property tests once found unstable, kept as cases.
#[test]
fn stable_on_glued_and_tagged_input() {
    for input in [
        "jane@example.comjane@example.comjane@example.com0",
        "%2B123-45-67894111 1111 1111 1111",
        "+1 555 123 4567 4111 1111 1111",
        "jane@example.compassword:***",
        "a@b.com@c.com",
    ] {
        let once = pii().mask(input).into_owned();
        assert_eq!(pii().mask(&once), once, "{input:?}");
    }
    let hashing = pii().with_hash_key(b"0123456789abcdef").unwrap();
    for input in [
        "123-45-6789[",
        "://4111 1111 1111 1111\\@",
        "://4111 1111 1111 1111:\\@",
    ] {
        let once = hashing.mask(input).into_owned();
        assert_eq!(hashing.mask(&once), once, "{input:?}");
    }
}

#[test]
fn odd_input_never_panics() {
    let m = pii();
    let inputs = [
        "@",
        "%",
        "%4",
        "%40",
        "+",
        "(",
        "(5",
        "(555",
        "=",
        ":",
        "\"",
        "\\\"",
        "a=",
        "password=",
        "password=\"",
        "\"token\":",
        "\"token\":\"",
        "\"token\": {",
        "x@",
        "@x.com",
        "1",
        "1-",
        "1.",
        "+1",
        "4111 1111 1111 111",
        "é@ü.de",
        "ü4111111111111111",
        "Authorization:",
        "Authorization: ",
        "https://a:b@",
        "://@",
        "%2B",
        "%2B1",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14",
        "1-2-3-4-5-6-7-8-9-10-11-12-13-14",
    ];
    for input in inputs {
        let once = m.mask(input);
        assert_eq!(m.mask(&once), once, "{input:?}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Texts made of the pieces the rules look at, in any order.
    fn texty() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("4111 1111 1111 1111".to_owned()),
            Just("4111111111111111".to_owned()),
            Just("555-123-4567".to_owned()),
            Just("(555) 123-4567".to_owned()),
            Just("+4915112345678".to_owned()),
            Just("123-45-6789".to_owned()),
            Just("jane@example.com".to_owned()),
            Just("%40".to_owned()),
            Just("%2B".to_owned()),
            Just("password".to_owned()),
            Just("token".to_owned()),
            Just("Authorization".to_owned()),
            Just("ssn".to_owned()),
            Just("phone".to_owned()),
            Just("[REDACTED]".to_owned()),
            Just("***".to_owned()),
            Just("hmac".to_owned()),
            Just("://".to_owned()),
            Just("Bearer ".to_owned()),
            Just("Cookie: ".to_owned()),
            Just("=\"".to_owned()),
            Just("\": ".to_owned()),
            Just("\\\"".to_owned()),
            Just("+1 ".to_owned()),
            Just("SSN ".to_owned()),
            Just("12-3456789".to_owned()),
            Just("555 123 4567".to_owned()),
            Just("123 45 6789".to_owned()),
            Just("user[password]".to_owned()),
            Just("trace_id".to_owned()),
            Just("ssn:hmac:".to_owned()),
            "[0-9]{1,20}",
            "[a-zA-Z_]{1,8}",
            "[ .,:;=@%+()\\[\\]{}\"'\\\\/#*&|<>?\\n\\t-]{1,3}",
            "[é€ü]{1,2}",
        ];
        prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
    }

    /// The Luhn check digit that completes `digits`.
    fn luhn_digit(digits: &[u8]) -> u8 {
        let mut with = digits.to_vec();
        with.push(b'0');
        (0..10u8)
            .map(|d| b'0' + d)
            .find(|&d| {
                *with.last_mut().unwrap() = d;
                numbers::luhn_valid(&with)
            })
            .unwrap()
    }

    /// A personal item as text, and its mask.
    type Item = (String, String);

    /// A Luhn-valid card of a random brand and length, plain or grouped in
    /// fours with spaces or dashes.
    fn card() -> impl Strategy<Value = Item> {
        let brands = prop::sample::select(vec![
            ("4", 16),
            ("4", 13),
            ("4", 19),
            ("51", 16),
            ("55", 16),
            ("2221", 16),
            ("2720", 16),
            ("2200", 18),
            ("34", 15),
            ("37", 15),
            ("36", 14),
            ("300", 14),
            ("3528", 16),
            ("6011", 16),
            ("65", 19),
            ("62", 17),
            ("50", 12),
            ("67", 13),
        ]);
        (
            brands,
            "[0-9]{18}",
            prop::sample::select(vec!["", " ", "-"]),
        )
            .prop_map(|((prefix, len), random, sep)| {
                let mut digits = prefix.as_bytes().to_vec();
                digits.extend_from_slice(&random.as_bytes()[..len - 1 - prefix.len()]);
                digits.push(luhn_digit(&digits));
                let plain = String::from_utf8(digits).unwrap();
                let text = plain
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(sep);
                (text, format!("****-****-****-{}", &plain[len - 4..]))
            })
    }

    /// A North American or international phone number in one of its forms.
    fn phone() -> impl Strategy<Value = Item> {
        ("[2-9][0-9]{2}", "[2-9][0-9]{2}", "[0-9]{4}", 0..7usize).prop_map(
            |(area, exchange, line, form)| {
                let text = match form {
                    0 => format!("{area}-{exchange}-{line}"),
                    1 => format!("{area}.{exchange}.{line}"),
                    2 => format!("{area} {exchange} {line}"),
                    3 => format!("({area}) {exchange}-{line}"),
                    4 => format!("1-{area}-{exchange}-{line}"),
                    5 => format!("+1 {area} {exchange} {line}"),
                    _ => format!("+49{area}{exchange}{line}"),
                };
                (text, format!("***-***-{line}"))
            },
        )
    }

    /// An SSN or an EIN, with dashes or spaces.
    fn ssn() -> impl Strategy<Value = Item> {
        ("[1-8][0-9][1-9]", "[1-9][0-9]", "[1-9][0-9]{3}", 0..3usize).prop_map(
            |(area, group, serial, form)| {
                let text = match form {
                    0 => format!("{area}-{group}-{serial}"),
                    1 => format!("{area} {group} {serial}"),
                    _ => format!("{group}-{area}{serial}"),
                };
                (text, "***-**-****".to_owned())
            },
        )
    }

    /// An email: one-letter or longer local parts, subdomains, A-labels.
    fn email() -> impl Strategy<Value = Item> {
        let label = prop_oneof![
            "[a-z][a-z0-9]{0,6}",
            "[a-z][a-z0-9-]{0,5}[a-z0-9]",
            "xn--[a-z0-9]{2,8}",
        ];
        let tld = prop_oneof!["[a-z]{2,6}", "xn--[a-z0-9]{2,6}"];
        (
            "[a-z0-9]([a-z0-9._+-]{0,8}[a-z0-9])?",
            prop::collection::vec(label, 1..5),
            tld,
        )
            .prop_map(|(local, labels, tld)| {
                let domain = format!("{}.{tld}", labels.join("."));
                let mask = format!("{}***@{domain}", &local[..1]);
                (format!("{local}@{domain}"), mask)
            })
    }

    /// A custom pattern's match (see [`with_custom_patterns`]).
    fn employee() -> impl Strategy<Value = Item> {
        "[0-9]{6}".prop_map(|id| (format!("EMP-{id}"), "EMP-******".to_owned()))
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![card(), phone(), ssn(), email(), employee()]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any personal item, then any punctuation that may end a sentence
        /// or a clause: the item is masked, the punctuation kept.
        #[test]
        fn punctuation_after_an_item_is_kept_and_the_item_masked(
            (text, mask) in item(),
            punctuation in prop::sample::select(PUNCTUATION.to_vec()),
            before in prop::sample::select(vec!["", "see ", "on file: ", "(", "\""]),
            after in prop::sample::select(vec!["", " then", "\n", " 42"]),
        ) {
            let m = with_custom_patterns();
            let input = format!("{before}{text}{punctuation}{after}");
            let masked = m.mask(&input);
            prop_assert_eq!(&*masked, format!("{before}{mask}{punctuation}{after}"));
            prop_assert_eq!(&*m.mask(&masked), &*masked);
            // Hashing: a tag instead of the mask, the punctuation still kept.
            let hashing = m.clone().with_hash_key(b"0123456789abcdef").unwrap();
            let hashed = hashing.mask(&input);
            prop_assert!(!hashed.contains(&text), "{:?} in {:?}", text, hashed);
            let kept = format!("{punctuation}{after}");
            prop_assert!(hashed.starts_with(before) && hashed.ends_with(&kept), "{:?}", hashed);
        }

        #[test]
        fn masking_is_stable_and_borrows_when_unchanged(text in texty()) {
            let m = PiiMasker::default();
            let once = m.mask(&text);
            if once == text.as_str() {
                prop_assert!(matches!(once, Cow::Borrowed(_)));
            }
            let twice = m.mask(&once);
            prop_assert_eq!(&*twice, &*once, "input {:?}", text);
        }

        #[test]
        fn hashing_is_stable(text in texty()) {
            let m = PiiMasker::default().with_hash_key(b"0123456789abcdef").unwrap();
            let once = m.mask(&text);
            let twice = m.mask(&once);
            prop_assert_eq!(&*twice, &*once, "input {:?}", text);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,64}") {
            let m = PiiMasker::default();
            let _ = m.mask(&text);
            let _ = m.mask_query(&text);
        }
    }
}
