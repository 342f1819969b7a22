//! The exporters named in code: order, duplicates and names. Each
//! exporter's own settings are its plugin's (and tested there).

use super::*;

#[test]
fn exporters_in_code_keep_their_order_without_duplicates() {
    let c = build_ok(builder().exporters([
        ExporterKind::CONSOLE,
        ExporterKind::OTLP,
        ExporterKind::named("mine"),
        ExporterKind::CONSOLE,
    ]));
    assert_eq!(
        c.exporters(),
        &[
            ExporterKind::CONSOLE,
            ExporterKind::OTLP,
            ExporterKind::named("mine")
        ]
    );
    assert!(build_ok(builder().exporters([])).exporters().is_empty());
}

#[test]
fn exporter_names_must_be_well_formed() {
    for bad in [
        "",
        "Mine",
        "my exporter",
        "9lives",
        "a/b",
        "none",
        &"x".repeat(65),
    ] {
        let e = build_err(builder().exporters([ExporterKind::named(bad.to_owned())]));
        assert_one_line(&e);
        assert!(e.to_string().starts_with("exporters: invalid value"), "{e}");
    }
    for good in ["mine", "audit-log", "my_exporter.v2", &"x".repeat(64)] {
        build_ok(builder().exporters([ExporterKind::named(good.to_owned())]));
    }
}
