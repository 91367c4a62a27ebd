//! Sizes for people, in one style: the one formatter behind every size tako prints.
//!
//! The style, used by every human output (fetch, check, status, gc, image pull and purge,
//! progress lines and bars): below 1 KiB the count in bytes (`0 bytes`, `1 byte`,
//! `512 bytes`); from 1 KiB the largest binary unit that keeps the value under 1024, with
//! one decimal (`1.0 KiB`, `4.3 MiB`, `1.2 GiB`). Binary units because images and disks are
//! counted in them; one decimal because a person compares sizes at a glance, and more
//! digits only look precise. Rates add `/s` (`4.3 MiB/s`).
//!
//! Raw byte counts stay where a program or an exact comparison needs them: `--json`
//! records, and messages that set a size against a limit or against the size a manifest
//! signs (`expected 8388608 bytes`), where the exact count is the point.

const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/// `size` in tako's one style: `512 bytes`, `1 byte`, `4.3 MiB`.
pub fn human(size: u64) -> String {
    if size < 1024 {
        let unit = if size == 1 { "byte" } else { "bytes" };
        return format!("{size} {unit}");
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 MiB would print as "1024.0 MiB": move up before rounding does.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_below_one_kibibyte_are_counted_in_bytes() {
        assert_eq!(human(0), "0 bytes");
        assert_eq!(human(1), "1 byte");
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1023), "1023 bytes");
    }

    #[test]
    fn larger_sizes_take_the_largest_binary_unit_that_fits_with_one_decimal() {
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(52 << 20), "52.0 MiB");
        assert_eq!(human(1_258_291), "1.2 MiB");
        assert_eq!(human((1 << 30) - 1), "1.0 GiB");
        assert_eq!(human(1536 << 20), "1.5 GiB");
        assert_eq!(human(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn a_value_that_would_round_up_to_1024_moves_to_the_next_unit() {
        // 1023.96 MiB
        let size = (1023.96 * 1024.0 * 1024.0) as u64;
        assert_eq!(human(size), "1.0 GiB");
        assert_eq!(human(1023 << 20), "1023.0 MiB");
    }
}
