//! Serde helpers that reproduce Go `encoding/json` behaviour where serde's differs.

use serde::{Deserialize, Deserializer, Serializer};

/// Go decodes `null` into a zero value; serde would reject it for non-Option fields.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go writes float64 with the shortest representation that round-trips, without a trailing
/// `.0` for integral values and with an exponent only outside [1e-6, 1e21). serde_json would
/// write `2.0` where Go writes `2`.
pub fn go_float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e21 {
        // Exact: every integral f64 below 1e21 fits an i128. i64 where it fits, because some
        // serializers (serde_json's Value among them) reject i128 values beyond 64 bits.
        let i = *v as i128;
        match i64::try_from(i) {
            Ok(small) => s.serialize_i64(small),
            Err(_) => s.serialize_i128(i),
        }
    } else {
        s.serialize_f64(*v)
    }
}

pub fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

pub fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

pub fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

pub fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

pub fn is_false(v: &bool) -> bool {
    !*v
}
