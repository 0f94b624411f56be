//! Values at rest: large values are kept LZ4-compressed, transparently to callers.
//!
//! Why: events are most of the write load, and a stored event is ~2.5 KB of JSON (entity,
//! check definition, 21 history entries) that compresses to well under half. What a store
//! commits per event is what limits it: redb writes fewer pages per commit, etcd replicates
//! and fsyncs fewer bytes per transaction. Callers always get back exactly the bytes they
//! stored, so the API's JSON is byte-identical whatever the stored form.
//!
//! LZ4 (block format, `lz4_flex`) rather than zstd or deflate: it costs a few microseconds per
//! event to compress and about one to decompress, so the embedded store's CPU per write does
//! not grow, while JSON with repeated keys still shrinks by half or more (the events
//! benchmark's store file: 51–68 MiB before, 34 MiB after).
//!
//! A compressed value is `original length (u32 LE) ‖ LZ4 block`; each store marks it in its
//! own versioned framing (the embedded store's record format byte, a 4-byte prefix on etcd).

use crate::{Result, StoreError};

/// Values shorter than this are stored as they are: small values (switches, cursors,
/// counters) gain nothing and keep their raw bytes, so ordered value comparisons still work.
pub const COMPRESS_MIN: usize = 512;

/// No stored value decompresses to more than this (etcd's own request limit is far below);
/// a larger length prefix is corruption, refused before allocating.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// The compressed form of `value`, when it is worth storing: long enough, and smaller.
pub fn compress(value: &[u8]) -> Option<Vec<u8>> {
    if value.len() < COMPRESS_MIN || value.len() > MAX_DECOMPRESSED {
        return None;
    }
    let packed = lz4_flex::block::compress_prepend_size(value);
    (packed.len() < value.len()).then_some(packed)
}

/// The original bytes of a [`compress`]ed value.
pub fn decompress(packed: &[u8]) -> Result<Vec<u8>> {
    let Some((len, block)) = packed.split_first_chunk::<4>() else {
        return Err(corrupt("compressed value shorter than its length prefix"));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_DECOMPRESSED {
        return Err(corrupt(format!(
            "compressed value claims {len} bytes (limit {MAX_DECOMPRESSED})"
        )));
    }
    let value = lz4_flex::block::decompress(block, len)
        .map_err(|e| corrupt(format!("compressed value does not decompress: {e}")))?;
    if value.len() != len {
        return Err(corrupt(format!(
            "compressed value decompressed to {} bytes, {len} expected",
            value.len()
        )));
    }
    Ok(value)
}

fn corrupt(message: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt stored value: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_or_incompressible_values_stay_raw() {
        assert_eq!(compress(&[b'x'; COMPRESS_MIN - 1]), None);
        // Bytes without repetition do not shrink.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64: no repetition for LZ4 to find.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(compress(&noise), None);
    }

    #[test]
    fn round_trips_and_shrinks_json() {
        let history: Vec<String> = (0..21)
            .map(|i| {
                format!(
                    r#"{{"status":{},"executed":{}}}"#,
                    i % 3,
                    1_764_000_000 + 60 * i
                )
            })
            .collect();
        let json = format!(r#"{{"check":{{"history":[{}]}}}}"#, history.join(","));
        let packed = compress(json.as_bytes()).expect("JSON history compresses");
        assert!(
            packed.len() * 2 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
        assert_eq!(decompress(&packed).unwrap(), json.as_bytes());
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert!(decompress(&[1, 0]).is_err());
        assert!(decompress(&u32::MAX.to_le_bytes()).is_err());
        let json = vec![b'{'; 2000];
        let mut packed = compress(&json).unwrap();
        packed.truncate(packed.len() - 1);
        assert!(decompress(&packed).is_err());
        // A length prefix that disagrees with the block.
        let mut packed = compress(&json).unwrap();
        packed[0] = packed[0].wrapping_add(1);
        assert!(decompress(&packed).is_err());
    }
}
