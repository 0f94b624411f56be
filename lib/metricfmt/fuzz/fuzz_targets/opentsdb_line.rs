//! Fuzz `metricfmt::opentsdb_line`: any text must parse without panicking, and what comes out
//! must keep the crate's invariants (no NaN point, skipped lines within the text) and the
//! format's own rules below.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Lossy, so byte strings that are almost text still reach the parser.
    let text = String::from_utf8_lossy(data);
    let parsed = metricfmt::opentsdb_line::parse(&text);
    let lines = text.split('\n').count();
    for point in &parsed.points {
        assert!(!point.value.is_nan(), "NaN point {point:?}");
        assert!(point.value.is_finite(), "{point:?}");
        assert!(!point.tags.is_empty(), "{point:?}");
        assert!(point.timestamp >= 0, "{point:?}");
    }
    for skipped in &parsed.skipped {
        assert!(
            (1..=lines).contains(&skipped.line),
            "{skipped:?} of {lines} lines"
        );
        assert!(!skipped.reason.is_empty());
    }
});
