//! Fuzz `metricfmt::nagios_perfdata`: any text must parse without panicking, and what comes out
//! must keep the crate's invariants (no NaN point, skipped lines within the text) and the
//! format's own rules below.
#![no_main]

use libfuzzer_sys::fuzz_target;

const EXECUTED: i64 = 1_699_999_990;

fuzz_target!(|data: &[u8]| {
    // Lossy, so byte strings that are almost text still reach the parser.
    let text = String::from_utf8_lossy(data);
    let parsed = metricfmt::nagios_perfdata::parse(&text, EXECUTED);
    let lines = text.split('\n').count();
    for point in &parsed.points {
        assert!(!point.value.is_nan(), "NaN point {point:?}");
        // Perfdata points are stamped with the check's execution time and carry no tags.
        assert_eq!(point.timestamp, EXECUTED);
        assert!(point.tags.is_empty());
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
