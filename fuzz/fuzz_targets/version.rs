//! Version and pattern parsing never panic; the version order is a total
//! order consistent with equality; wildcard, exact and bounds patterns agree
//! with that order.
//!
//! The input is split at the first two newlines into up to three strings.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use tako_fuzz::format::version::{Pattern, Version};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The whole input too, so parsing sees newlines.
    check_parsers(&text);
    let strings: Vec<&str> = text.splitn(3, '\n').collect();
    if strings.len() < 2 {
        return;
    }
    let mut parsed = Vec::new();
    for s in &strings {
        check_parsers(s);
        if let Ok(v) = Version::parse(s) {
            parsed.push((*s, v));
        }
    }
    check_order(&parsed);
    let versions: Vec<&Version> = parsed.iter().map(|(_, v)| v).collect();
    for (s, v) in &parsed {
        check_wildcard(s, v, &versions, &strings);
        check_exact(s, v, &versions);
        for (t, w) in &parsed {
            check_bounds(s, v, t, w, &versions);
        }
    }
});

fn check_parsers(s: &str) {
    match Version::parse(s) {
        Ok(v) => {
            assert_eq!(v.as_str(), s);
            assert_eq!(v.to_string(), s);
        }
        Err(e) => drop(e.to_string()),
    }
    match Pattern::parse(s) {
        Ok(p) => assert_eq!(p.as_str(), s.trim()),
        Err(e) => drop(e.to_string()),
    }
}

fn check_order(parsed: &[(&str, Version)]) {
    for (_, a) in parsed {
        assert_eq!(a.cmp(a), Ordering::Equal, "{a:?}");
        #[allow(clippy::eq_op)]
        let reflexive = a == a;
        assert!(reflexive, "{a:?}");
        for (_, b) in parsed {
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a:?} vs {b:?}");
            assert_eq!(a == b, a.cmp(b).is_eq(), "{a:?} vs {b:?}");
            assert_eq!(a.partial_cmp(b), Some(a.cmp(b)));
            for (_, c) in parsed {
                if a <= b && b <= c {
                    assert!(a <= c, "{a:?} <= {b:?} <= {c:?}");
                }
                if a < b && b < c {
                    assert!(a < c, "{a:?} < {b:?} < {c:?}");
                }
                if a == b {
                    assert_eq!(a.cmp(c), b.cmp(c), "{a:?} == {b:?}, vs {c:?}");
                }
            }
        }
    }
}

/// Whether `s` survives `Pattern::parse`'s trimming unchanged.
fn untrimmed(s: &str) -> bool {
    s.trim() == s
}

/// `{a}.*` selects a contiguous, equality-respecting range of the order that
/// contains `a` itself and every `{a}.{x}`.
fn check_wildcard(a: &str, av: &Version, versions: &[&Version], strings: &[&str]) {
    let Ok(pattern) = Pattern::parse(&format!("{a}.*")) else {
        return;
    };
    if untrimmed(a) {
        assert!(pattern.matches(av), "{pattern} should match {a:?}");
        for x in strings {
            if let Ok(longer) = Version::parse(&format!("{a}.{x}")) {
                assert!(pattern.matches(&longer), "{pattern} should match {longer}");
            }
        }
    }
    for x in versions {
        for y in versions {
            if x == y {
                assert_eq!(
                    pattern.matches(x),
                    pattern.matches(y),
                    "{pattern}: {x:?} == {y:?}"
                );
            }
            for z in versions {
                if x <= y && y <= z && pattern.matches(x) && pattern.matches(z) {
                    assert!(pattern.matches(y), "{pattern}: {x:?} <= {y:?} <= {z:?}");
                }
            }
        }
    }
}

/// A version used as a pattern selects exactly the versions equal to it.
fn check_exact(a: &str, av: &Version, versions: &[&Version]) {
    if !untrimmed(a) || a.contains(['<', '*']) {
        return;
    }
    let pattern = Pattern::parse(a).expect("a version without '<' or '*' is a pattern");
    for x in versions {
        assert_eq!(pattern.matches(x), *x == av, "{pattern} vs {x:?}");
    }
}

/// `{a} <= v < {b}` selects exactly lo <= x < hi, and a well-formed,
/// non-empty range always parses.
fn check_bounds(a: &str, lo: &Version, b: &str, hi: &Version, versions: &[&Version]) {
    let text = format!("{a} <= v < {b}");
    let pattern = match Pattern::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            let plain = |s: &str| !s.contains(|c: char| c.is_whitespace() || "*<=".contains(c));
            assert!(
                !(plain(a) && plain(b) && lo < hi),
                "{text:?} was refused: {e}"
            );
            return;
        }
    };
    // Pattern::parse trims each bound; only untrimmed ones are `lo` and `hi`.
    if !(untrimmed(a) && untrimmed(b)) {
        return;
    }
    for x in versions {
        assert_eq!(
            pattern.matches(x),
            *lo <= **x && **x < *hi,
            "{pattern} vs {x:?}"
        );
    }
}
