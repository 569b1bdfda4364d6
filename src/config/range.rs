//! Every number a user can set has a range, and the error for a number outside it states the range.

use std::fmt::Display;
use std::ops::RangeInclusive;

/// `Ok` when `value` is in `range`, else "`value` is out of range: must be `lo` to `hi`".
pub fn within<T: PartialOrd + Display>(value: T, range: RangeInclusive<T>) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value} is out of range: must be {} to {}",
            range.start(),
            range.end()
        ))
    }
}

/// The longest a topic prefix (`mqtt.prefix`, `mqtt.ha_discovery_prefix`) may be, in bytes: with
/// the device id and the longest suffix it stays far under MQTT's 65,535-byte topic limit.
pub const MAX_PREFIX_BYTES: usize = 1024;
/// The longest one topic level we build from configuration (`device_id`, `site_id`) may be.
pub const MAX_LEVEL_BYTES: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_the_range() {
        assert_eq!(within(5u64, 1..=10), Ok(()));
        assert_eq!(
            within(u64::MAX, 1..=86_400).unwrap_err(),
            "18446744073709551615 is out of range: must be 1 to 86400"
        );
        assert!(within(0.5f32, 1.0..=2.0).is_err());
    }
}
