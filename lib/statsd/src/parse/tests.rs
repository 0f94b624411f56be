use super::*;

fn ok(line: &str) -> Metric<'_> {
    parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn tags(m: &Metric<'_>) -> Vec<(String, String)> {
    m.tags
        .iter()
        .map(|t| (t.name.to_string(), t.value.to_string()))
        .collect()
}

#[test]
fn valid_lines() {
    // (line, name, value, rate, raw tags)
    let table: &[(&str, &str, Value<'_>, f64, &str)] = &[
        ("hits:1|c", "hits", Value::Counter(1.0), 1.0, ""),
        ("hits:-2.5|c", "hits", Value::Counter(-2.5), 1.0, ""),
        ("hits:3|c|@0.5", "hits", Value::Counter(3.0), 0.5, ""),
        ("hits:3|c|@1", "hits", Value::Counter(3.0), 1.0, ""),
        ("hits:1e3|c", "hits", Value::Counter(1000.0), 1.0, ""),
        ("hits:.5|c", "hits", Value::Counter(0.5), 1.0, ""),
        ("temp:21.5|g", "temp", Value::Gauge(21.5), 1.0, ""),
        ("temp:0|g", "temp", Value::Gauge(0.0), 1.0, ""),
        ("temp:+4|g", "temp", Value::GaugeDelta(4.0), 1.0, ""),
        ("temp:-4|g", "temp", Value::GaugeDelta(-4.0), 1.0, ""),
        ("temp:+0|g", "temp", Value::GaugeDelta(0.0), 1.0, ""),
        ("lat:320|ms", "lat", Value::Timer(320.0), 1.0, ""),
        (
            "lat:320.000000|ms|@0.1",
            "lat",
            Value::Timer(320.0),
            0.1,
            "",
        ),
        ("size:12|h", "size", Value::Histogram(12.0), 1.0, ""),
        ("users:alice|s", "users", Value::Set("alice"), 1.0, ""),
        // A set member may look like a number or carry a colon.
        ("users:42|s", "users", Value::Set("42"), 1.0, ""),
        ("users:a:b|s", "users", Value::Set("a:b"), 1.0, ""),
        (
            "api.req:1|c|#env:prod,az:eu-1",
            "api.req",
            Value::Counter(1.0),
            1.0,
            "env:prod,az:eu-1",
        ),
        // Sections in either order.
        ("a:1|c|#k:v|@0.25", "a", Value::Counter(1.0), 0.25, "k:v"),
        ("a:1|c|@0.25|#k:v", "a", Value::Counter(1.0), 0.25, "k:v"),
        ("a:1|c|#", "a", Value::Counter(1.0), 1.0, ""),
        // Surrounding whitespace and CRLF line ends.
        ("  a:1|c\r", "a", Value::Counter(1.0), 1.0, ""),
        // Names are free text up to the first ':'.
        (
            "my app/latency ms:5|ms",
            "my app/latency ms",
            Value::Timer(5.0),
            1.0,
            "",
        ),
        ("ünïcode:1|c", "ünïcode", Value::Counter(1.0), 1.0, ""),
    ];
    for &(line, name, value, rate, raw_tags) in table {
        let m = ok(line);
        assert_eq!(m.name, name, "{line}");
        assert_eq!(m.value, value, "{line}");
        assert_eq!(m.sample_rate, rate, "{line}");
        assert_eq!(m.tags.as_str(), raw_tags, "{line}");
    }
}

#[test]
fn invalid_lines() {
    use ParseError::*;
    let long_name = format!("{}:1|c", "n".repeat(MAX_LINE_LEN));
    let table: &[(&[u8], ParseError)] = &[
        (b"hits", MissingValue),
        (b"hits|c", MissingValue),
        (b":1|c", EmptyName),
        (b"a|c:1", BadName),
        (b"hits:1", MissingType),
        (b"hits:1|", UnknownType),
        (b"hits:1|x", UnknownType),
        (b"hits:1|C", UnknownType),
        (b"hits:1|msx", UnknownType),
        (b"hits:|c", BadValue),
        (b"hits:abc|c", BadValue),
        (b"hits:1.2.3|c", BadValue),
        (b"hits:1 |c", BadValue),
        (b"hits:0x10|c", BadValue),
        (b"hits:inf|c", BadValue),
        (b"hits:NaN|g", BadValue),
        (b"hits:infinity|ms", BadValue),
        (b"hits:1e999|c", BadValue),
        (b"hits:--1|g", BadValue),
        (b"hits:+-1|g", BadValue),
        (b"hits:1e|c", BadValue),
        (b"users:|s", EmptyMember),
        (b"hits:1|c|@", BadSampleRate),
        (b"hits:1|c|@0", BadSampleRate),
        (b"hits:1|c|@-0.5", BadSampleRate),
        (b"hits:1|c|@1.5", BadSampleRate),
        (b"hits:1|c|@x", BadSampleRate),
        (b"hits:1|c|@nan", BadSampleRate),
        (b"hits:1|c|@0.5|@0.5", DuplicateSection),
        (b"hits:1|c|#a|#b", DuplicateSection),
        (b"hits:1|c|", UnknownSection),
        (b"hits:1|c|c:container", UnknownSection),
        (b"hits:1|c|T1656581400", UnknownSection),
        (b"hi\xfft:1|c", NotUtf8),
        (b"hits:1|c|#k:\xc3", NotUtf8),
        (long_name.as_bytes(), TooLong),
    ];
    for &(line, want) in table {
        assert_eq!(
            parse_line(line),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn line_length_limit_is_inclusive() {
    let value = "1|c";
    let name = "n".repeat(MAX_LINE_LEN - value.len() - 1);
    let line = format!("{name}:{value}");
    assert_eq!(line.len(), MAX_LINE_LEN);
    assert_eq!(ok(&line).name.len(), name.len());
    let over = format!("n{line}");
    assert_eq!(parse_line(over.as_bytes()), Err(ParseError::TooLong));
    // Whitespace around the line does not count.
    let padded = format!("   {line}\r");
    assert!(parse_line(padded.as_bytes()).is_ok());
}

#[test]
fn huge_input_is_refused_without_scanning_for_structure() {
    // A 1 MiB line of colons and pipes: refused by length, whatever it contains.
    let huge = vec![b':'; 1 << 20];
    assert_eq!(parse_line(&huge), Err(ParseError::TooLong));
    // Inside a datagram it is one bad line among good ones.
    let mut datagram = b"a:1|c\n".to_vec();
    datagram.extend_from_slice(&huge);
    datagram.extend_from_slice(b"\nb:2|c");
    let mut it = parse_datagram(&datagram);
    let names: Vec<&str> = it.by_ref().map(|m| m.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(it.bad_lines(), 1);
    assert_eq!(it.last_error(), Some(ParseError::TooLong));
}

#[test]
fn tags_are_split_dogstatsd_style() {
    let m = ok("a:1|c|#env:prod,,az:eu-1,debug,url:http://x:80,:v,");
    assert_eq!(
        tags(&m),
        [
            ("env", "prod"),
            ("az", "eu-1"),
            ("debug", ""),
            ("url", "http://x:80"),
            ("", "v"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(!m.tags.is_empty());
    assert!(ok("a:1|c").tags.is_empty());
    assert!(ok("a:1|c|#,,").tags.is_empty());
}

#[test]
fn datagram_lines() {
    let datagram = b"a:1|c\n\nb:2|g\r\nnot a metric\n   \nc:3|ms\nd:x|c\ne:u|s\n";
    let mut it = parse_datagram(datagram);
    let got: Vec<(&str, Value<'_>)> = it.by_ref().map(|m| (m.name, m.value)).collect();
    assert_eq!(
        got,
        [
            ("a", Value::Counter(1.0)),
            ("b", Value::Gauge(2.0)),
            ("c", Value::Timer(3.0)),
            ("e", Value::Set("u")),
        ]
    );
    assert_eq!(it.bad_lines(), 2);
    assert_eq!(it.last_error(), Some(ParseError::BadValue));

    let mut empty = parse_datagram(b"");
    assert!(empty.next().is_none());
    assert_eq!(empty.bad_lines(), 0);
    let mut blank = parse_datagram(b"\n\n\r\n");
    assert!(blank.next().is_none());
    assert_eq!(blank.bad_lines(), 0);
    // No trailing newline needed, and one bad line alone is counted.
    let mut bad = parse_datagram(b"oops");
    assert!(bad.next().is_none());
    assert_eq!(bad.bad_lines(), 1);
    assert_eq!(bad.last_error(), Some(ParseError::MissingValue));
}

#[test]
fn errors_read_well() {
    assert_eq!(
        ParseError::BadSampleRate.to_string(),
        "sample rate is not a number in (0, 1]"
    );
    assert_eq!(
        ParseError::TooLong.to_string(),
        format!("line longer than {MAX_LINE_LEN} bytes")
    );
}
