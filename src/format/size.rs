//! Sizes for people, in binary units: the one formatter behind every size tako prints.

const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/// `size` in the largest binary unit that keeps the value under 1024, with `decimals`
/// digits after the point (`52.0 MiB`, `1.20 GiB`); `None` below 1 KiB, where a unit would
/// add nothing and the caller says bytes its own way.
pub fn binary(size: u64, decimals: usize) -> Option<String> {
    if size < 1024 {
        return None;
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    // 1023.96 MiB would print as "1024.0 MiB" with one decimal: move up before rounding does.
    let bound = 1024.0 - 0.5 / 10f64.powi(i32::try_from(decimals).unwrap_or(i32::MAX));
    while value >= bound && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    Some(format!("{value:.decimals$} {}", UNITS[unit]))
}

/// A size with one decimal, as `tako fetch` shows a delta's cost: `512 bytes`, `52.0 MiB`.
pub fn short(size: u64) -> String {
    binary(size, 1).unwrap_or_else(|| format!("{size} bytes"))
}

/// The exact count and, from 1 KiB, the size in binary units: `1258291 bytes (1.20 MiB)`.
pub fn exact(size: u64) -> String {
    match binary(size, 2) {
        None => format!("{size} bytes"),
        Some(human) => format!("{size} bytes ({human})"),
    }
}

/// A size in a list of removed files: `5 B`, `1.20 MiB`.
pub fn brief(size: u64) -> String {
    binary(size, 2).unwrap_or_else(|| format!("{size} B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_below_one_kibibyte_are_counted_in_bytes() {
        assert_eq!(short(512), "512 bytes");
        assert_eq!(exact(10), "10 bytes");
        assert_eq!(brief(5), "5 B");
    }

    #[test]
    fn larger_sizes_take_the_largest_unit_that_fits() {
        assert_eq!(short(52 << 20), "52.0 MiB");
        assert_eq!(short(1 << 30), "1.0 GiB");
        assert_eq!(exact(1_258_291), "1258291 bytes (1.20 MiB)");
        assert_eq!(brief(8 << 20), "8.00 MiB");
    }

    #[test]
    fn sizes_are_shown_in_binary_units_with_one_decimal() {
        assert_eq!(short(0), "0 bytes");
        assert_eq!(short(1023), "1023 bytes");
        assert_eq!(short(1024), "1.0 KiB");
        assert_eq!(short(52 << 20), "52.0 MiB");
        assert_eq!(short((1 << 30) - 1), "1.0 GiB");
        assert_eq!(short(1536 << 20), "1.5 GiB");
        assert_eq!(short(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn a_value_that_would_round_up_to_1024_moves_to_the_next_unit() {
        // 1023.96 MiB
        let size = (1023.96 * 1024.0 * 1024.0) as u64;
        assert_eq!(short(size), "1.0 GiB");
        assert_eq!(short(1023 << 20), "1023.0 MiB");
    }
}
