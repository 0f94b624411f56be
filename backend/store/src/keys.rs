//! Key helpers shared by every store implementation.

/// The smallest key greater than every key that starts with `prefix`, or `None` when the
/// prefix is empty or all 0xFF (the range then runs to the end of the keyspace).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
