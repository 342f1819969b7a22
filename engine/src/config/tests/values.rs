//! The service name, version, environment, resource attributes and sample rate.

use super::*;

// ---------------------------------------------------------------------------
// Service name and other text
// ---------------------------------------------------------------------------

#[test]
fn service_name_valid() {
    let max = "a".repeat(255);
    for name in [
        "checkout",
        "checkout-api",
        "api-v2",
        "svc-2024-01",
        "A1",
        "x",
        "123",
        "Checkout-API",
        max.as_str(),
    ] {
        let c = build_ok(builder().service_name(name));
        assert_eq!(c.service_name(), name);
    }
}

#[test]
fn service_name_invalid() {
    let too_long = "a".repeat(256);
    let cases: &[(&str, &str)] = &[
        ("", "must not be empty"),
        (&too_long, "longer than 255 bytes"),
        (
            "check out",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            " checkout",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "check_out",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "unknown_service",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        ("café", "only ASCII letters, digits and hyphens are allowed"),
        ("服务", "only ASCII letters, digits and hyphens are allowed"),
        (
            "svc.name",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "svc/name",
            "only ASCII letters, digits and hyphens are allowed",
        ),
        (
            "svc\nname",
            "only ASCII letters, digits and hyphens are allowed",
        ),
    ];
    for (name, reason) in cases {
        let e = build_err(builder().service_name(*name));
        assert_names(&e, "service_name");
        assert!(e.to_string().ends_with(reason), "{name:?}: {e}");
    }
}

#[test]
fn service_name_error_messages() {
    assert_eq!(
        build_err(builder().service_name("")).to_string(),
        r#"service_name: invalid value "": must not be empty"#
    );
    assert_eq!(
        build_err(builder().service_name("check_out")).to_string(),
        r#"service_name: invalid value "check_out": only ASCII letters, digits and hyphens are allowed"#
    );
    assert_eq!(
        build_err(builder().service_name("svc\nname")).to_string(),
        r#"service_name: invalid value "svc\nname": only ASCII letters, digits and hyphens are allowed"#
    );
    // Long values are cut to 120 characters, with the full length given.
    let long = "a".repeat(256);
    assert_eq!(
        build_err(builder().service_name(long)).to_string(),
        format!(
            r#"service_name: invalid value "{}"... (256 bytes): longer than 255 bytes"#,
            "a".repeat(120)
        )
    );
    // A multi-byte name longer than 255 bytes.
    let e = build_err(builder().service_name("é".repeat(128)));
    assert!(
        e.to_string().contains("(256 bytes): longer than 255 bytes"),
        "{e}"
    );
}

#[test]
fn service_version_and_environment() {
    let c = build_ok(
        builder()
            .service_version("1.4.2+build.7")
            .deployment_environment("production"),
    );
    assert_eq!(c.service_version(), Some("1.4.2+build.7"));
    assert_eq!(c.deployment_environment(), Some("production"));

    for (value, reason) in [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("1.0\n", "must not hold control characters"),
        ("1.0\u{7}", "must not hold control characters"),
    ] {
        let e = build_err(builder().service_version(value));
        assert_names(&e, "service_version");
        assert!(e.to_string().ends_with(reason), "{e}");
        let e = build_err(builder().deployment_environment(value));
        assert_names(&e, "deployment_environment");
        assert!(e.to_string().ends_with(reason), "{e}");
    }
    assert_eq!(
        build_err(builder().deployment_environment("prod\t")).to_string(),
        r#"deployment_environment: invalid value "prod\t": must not hold control characters"#
    );
}

#[test]
fn resource_attributes_rules() {
    let c = build_ok(
        builder()
            .resource_attribute("team", "payments")
            .resource_attribute("k8s.pod.name", "checkout-7d9f")
            .resource_attribute("team", "billing"),
    );
    assert_eq!(
        c.resource_attributes(),
        &[
            ("k8s.pod.name".to_owned(), "checkout-7d9f".to_owned()),
            ("team".to_owned(), "billing".to_owned())
        ]
    );
    // Values may hold spaces and unicode.
    build_ok(builder().resource_attribute("owner", "Zoë Müller"));

    for key in ["", "has space", "tab\there", "é"] {
        let e = build_err(builder().resource_attribute(key, "v"));
        assert_names(&e, "resource_attributes");
        assert!(
            e.to_string()
                .ends_with("an attribute key must be printable ASCII without spaces"),
            "{e}"
        );
    }
    assert_eq!(
        build_err(builder().resource_attribute("team", "a\nb")).to_string(),
        r#"resource_attributes: invalid value "a\nb": the value of `team` must not hold control characters"#
    );
}

// ---------------------------------------------------------------------------
// Sample rate
// ---------------------------------------------------------------------------

#[test]
fn sample_rate_valid() {
    for rate in [0.0, -0.0, 0.25, 0.5, 1.0, f64::MIN_POSITIVE] {
        let c = build_ok(builder().sample_rate(rate));
        assert_eq!(c.sample_rate(), rate);
    }
}

#[test]
fn sample_rate_invalid() {
    let cases = [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (-0.1, "-0.1"),
        (1.1, "1.1"),
        (1.000_000_1, "1.0000001"),
        (-1.0, "-1"),
        (2.0, "2"),
    ];
    for (rate, shown) in cases {
        let e = build_err(builder().sample_rate(rate));
        assert_eq!(
            e.to_string(),
            format!(r#"sample_rate: invalid value "{shown}": must be a number within 0.0..=1.0"#)
        );
        assert_eq!(e.setting(), Some("sample_rate"));
    }
}

#[test]
fn parent_based_flag() {
    assert!(!build_ok(builder().parent_based(false)).parent_based());
    assert!(build_ok(builder().parent_based(true)).parent_based());
}
