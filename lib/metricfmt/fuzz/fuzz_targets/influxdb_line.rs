//! Fuzz `metricfmt::influxdb_line`: any text must parse without panicking, and what comes out
//! must keep the crate's invariants (no NaN point, skipped lines within the text) and the
//! format's own rules below.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    // Lossy, so byte strings that are almost text still reach the parser.
    let text = String::from_utf8_lossy(data);
    let parsed = metricfmt::influxdb_line::parse(&text, NOW);
    let lines = text.split('\n').count();
    for point in &parsed.points {
        assert!(!point.value.is_nan(), "NaN point {point:?}");
        // `measurement.field`, both non-empty; numbers only (string fields make no point).
        assert!(
            point.name.len() >= 3 && point.name.contains('.'),
            "{point:?}"
        );
        assert!(point.value.is_finite(), "{point:?}");
    }
    for skipped in &parsed.skipped {
        assert!(
            (1..=lines).contains(&skipped.line),
            "{skipped:?} of {lines} lines"
        );
        assert!(!skipped.reason.is_empty());
    }
});
