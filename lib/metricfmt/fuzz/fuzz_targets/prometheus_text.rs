//! Fuzz `metricfmt::prometheus_text`: any text must parse without panicking, and what comes out
//! must keep the crate's invariants (no NaN point, skipped lines within the text) and the
//! format's own rules below.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    // Lossy, so byte strings that are almost text still reach the parser.
    let text = String::from_utf8_lossy(data);
    let parsed = metricfmt::prometheus_text::parse(&text, NOW);
    let lines = text.split('\n').count();
    for point in &parsed.points {
        assert!(!point.value.is_nan(), "NaN point {point:?}");
        // Labels, then prom_type, then prom_help when the family has help.
        let n = point.tags.len();
        let at = |i: usize| point.tags.get(i).map(|(k, _)| k.as_str());
        assert!(
            at(n.wrapping_sub(1)) == Some("prom_type")
                || (at(n.wrapping_sub(2)) == Some("prom_type") && at(n - 1) == Some("prom_help")),
            "{point:?}"
        );
        assert!(!point.name.is_empty());
    }
    for skipped in &parsed.skipped {
        assert!(
            (1..=lines).contains(&skipped.line),
            "{skipped:?} of {lines} lines"
        );
        assert!(!skipped.reason.is_empty());
    }
});
