//! Transfer rates as curl writes them (`--limit-rate 4M`, `--speed-limit 1K`).

/// A rate as curl writes it: a whole number of bytes per second with an optional `K`, `M`
/// or `G` suffix (powers of 1024, either case); the reason for anything else.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            (text.get(..i).unwrap_or(""), Some(c.to_ascii_uppercase()))
        }
        _ => (text, None),
    };
    let shift = match unit {
        None => 0,
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some(_) => {
            return Err(
                "unknown unit; write bytes per second as a whole number, optionally followed \
                 by K, M or G (as in 500K or 10M)"
                    .to_owned(),
            );
        }
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "not a rate; write bytes per second as a whole number, optionally followed by K, \
             M or G (as in 500K or 10M)"
                .to_owned(),
        );
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| "the number is too large".to_owned())?;
    let rate = number
        .checked_mul(1 << shift)
        .ok_or_else(|| "the number is too large".to_owned())?;
    if rate == 0 {
        return Err("the rate must be at least 1 byte per second".to_owned());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_curls_syntax_with_binary_units() {
        assert_eq!(parse_rate("1"), Ok(1));
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("500k"), Ok(500 * 1024));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert_eq!(parse_rate(" 256K "), Ok(256 * 1024));
    }

    #[test]
    fn nonsense_rates_are_refused_with_a_reason() {
        for bad in [
            "", "K", "0", "0K", "-1", "1.5M", "10X", "10 M", "abc", "1KB",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_rate("99999999999999999999").is_err());
        assert!(
            parse_rate("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }
}
