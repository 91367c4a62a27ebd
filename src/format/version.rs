//! Version strings, their ordering, and the `Version=` patterns that select them.
//!
//! Tako's order is deliberately not SemVer: a version is a list of numeric and
//! string parts split at `.`, `-` and `_`, compared part by part after padding
//! the shorter list with zeros, and a string part sorts before any number.

use std::cmp::Ordering;
use std::fmt;

use thiserror::Error;

use crate::format::text::untrusted;

/// Why a version string was refused. The strings held are already made
/// safe to print (escaped and cut): versions come from manifests and
/// configs that someone else may have written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VersionError {
    #[error("invalid version '{0}': it has no parts (only separators or nothing)")]
    NoParts(String),
    #[error("invalid version '{version}': the number '{part}' does not fit in 64 bits")]
    NumberTooLarge { version: String, part: String },
}

/// Why a `Version=` pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("invalid version pattern '{0}': it is empty; use '*' to accept any version")]
    Empty(String),
    #[error(
        "invalid version pattern '{0}': '*' may only stand as the whole last part, as in '1.*'"
    )]
    MisplacedStar(String),
    #[error("invalid version pattern '{pattern}': {source}")]
    Version {
        pattern: String,
        source: VersionError,
    },
    #[error(
        "invalid version pattern '{0}': expected 'LOWER <= v < UPPER', for example '2.3 <= v < 3.0'"
    )]
    MalformedBounds(String),
    /// `>= 1.0`, `1.0 - 2.0`, `1.0 || 2.0`: range syntax of other tools,
    /// which as an exact pattern would silently never match.
    #[error(
        "invalid version pattern '{0}': only a range 'LOWER <= v < UPPER' may contain spaces; for a range write for example '1.0 <= v < 2.0'"
    )]
    Whitespace(String),
    #[error("invalid version pattern '{0}': the lower bound is not below the upper bound")]
    EmptyRange(String),
    /// `^1.2`, `~1.2`, `1.x`, `v1.*`, `latest`: another tool's way of saying "a range" or
    /// "the newest", which tako would read as an exact version that is never published.
    #[error(
        "invalid version pattern '{pattern}': {why}; tako's patterns are an exact version ('1.13.7'), a wildcard ('1.*', '*') or a range ('1.2 <= v < 2.0'), see docs/versions.md"
    )]
    Foreign { pattern: String, why: &'static str },
}

/// Why `text` is another tool's pattern syntax rather than tako's, if it is.
fn foreign_syntax(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    if text.starts_with('^') {
        return Some("'^' is npm's and cargo's caret range; for '^1.2' write '1.2 <= v < 2'");
    }
    if text.starts_with('~') {
        return Some("'~' is a tilde range of other tools; for '~1.2' write '1.2.*'");
    }
    if text.starts_with(['=', '>', '!']) {
        return Some("a comparison is written as a range 'LOWER <= v < UPPER'");
    }
    if matches!(lower.as_str(), "latest" | "newest" | "stable" | "current") {
        return Some("tako has no moving names; '*' accepts the highest published version");
    }
    let parts: Vec<&str> = text
        .split(['.', '-', '_'])
        .filter(|p| !p.is_empty())
        .collect();
    if parts.iter().any(|p| *p == "x" || *p == "X")
        && parts.iter().any(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some("an 'x' part is another tool's wildcard; for '1.x' write '1.*'");
    }
    let bytes = text.as_bytes();
    if bytes.len() > 1 && matches!(bytes[0], b'v' | b'V') && bytes[1].is_ascii_digit() {
        return Some(
            "a leading 'v' is part of the version string, so 'v1.2' never matches '1.2'; write the version as it is published, without the 'v'",
        );
    }
    None
}

/// One part of a version. `Min` and `Max` never come out of parsing: they are
/// the sentinels of wildcard patterns, ordering before and after every part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Part {
    Min,
    Str(Vec<u8>),
    Num(u64),
    Max,
}

const SEPARATORS: [char; 3] = ['.', '-', '_'];

fn split_parts(s: &str) -> impl Iterator<Item = &str> {
    s.split(SEPARATORS).filter(|p| !p.is_empty())
}

fn parse_part(version: &str, part: &str) -> Result<Part, VersionError> {
    if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
        part.parse::<u64>()
            .map(Part::Num)
            .map_err(|_| VersionError::NumberTooLarge {
                version: untrusted(version),
                part: untrusted(part),
            })
    } else {
        Ok(Part::Str(part.as_bytes().to_vec()))
    }
}

fn parse_parts(s: &str) -> Result<Vec<Part>, VersionError> {
    let parts = parse_parts_lenient(s)?;
    if parts.is_empty() {
        return Err(VersionError::NoParts(untrusted(s)));
    }
    Ok(parts)
}

/// As [`parse_parts`], but a string of separators only gives no parts.
fn parse_parts_lenient(s: &str) -> Result<Vec<Part>, VersionError> {
    split_parts(s).map(|p| parse_part(s, p)).collect()
}

const ZERO: Part = Part::Num(0);

/// Compares part lists as if the shorter one were padded with numeric zeros.
fn cmp_parts(a: &[Part], b: &[Part]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| a.get(i).unwrap_or(&ZERO).cmp(b.get(i).unwrap_or(&ZERO)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A parsed version. It keeps the string as published, because manifests and
/// messages show that string, while ordering and equality use the parts only
/// (so `1.0` == `1-0`).
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    parts: Vec<Part>,
}

impl Version {
    /// Parses a version as a publisher may give it: it needs at least one part.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        Ok(Version {
            text: s.to_string(),
            parts: parse_parts(s)?,
        })
    }

    /// Parses a version read from a published manifest. The original Tako
    /// published versions made only of separators (`...`); refusing them
    /// would make such a manifest unusable, so they are read as the empty
    /// version, which orders as (and is equal to) `0`. Only the empty
    /// string is refused.
    pub fn parse_published(s: &str) -> Result<Version, VersionError> {
        if s.is_empty() {
            return Err(VersionError::NoParts(String::new()));
        }
        Ok(Version {
            text: s.to_string(),
            parts: parse_parts_lenient(s)?,
        })
    }

    /// The version string exactly as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_parts(&self.parts, &other.parts)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

/// A `Version=` pattern: which published versions a client accepts.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone)]
enum PatternKind {
    Exact(Vec<Part>),
    /// `lower <= v <= upper`, where the bounds end in the `Min`/`Max` sentinels.
    Wildcard {
        lower: Vec<Part>,
        upper: Vec<Part>,
    },
    /// `lower <= v < upper`.
    Bounds {
        lower: Vec<Part>,
        upper: Vec<Part>,
    },
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(PatternError::Empty(untrusted(s)));
        }
        let kind = if text.contains('<') {
            parse_bounds(text)?
        } else if text.contains(char::is_whitespace) {
            // No published version contains whitespace (`tako store`
            // refuses it, the manifest format cannot hold it), so this could
            // never match anything.
            return Err(PatternError::Whitespace(untrusted(text)));
        } else if let Some(why) = foreign_syntax(text) {
            return Err(PatternError::Foreign {
                pattern: untrusted(text),
                why,
            });
        } else if text.contains('*') {
            parse_wildcard(text)?
        } else {
            PatternKind::Exact(parse_parts(text).map_err(|source| PatternError::Version {
                pattern: untrusted(text),
                source,
            })?)
        };
        Ok(Pattern {
            text: text.to_string(),
            kind,
        })
    }

    pub fn matches(&self, v: &Version) -> bool {
        let v = &v.parts;
        match &self.kind {
            PatternKind::Exact(p) => cmp_parts(v, p).is_eq(),
            PatternKind::Wildcard { lower, upper } => {
                cmp_parts(lower, v).is_le() && cmp_parts(v, upper).is_le()
            }
            PatternKind::Bounds { lower, upper } => {
                cmp_parts(lower, v).is_le() && cmp_parts(v, upper).is_lt()
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_wildcard(text: &str) -> Result<PatternKind, PatternError> {
    let misplaced = || PatternError::MisplacedStar(untrusted(text));
    let parts: Vec<&str> = split_parts(text).collect();
    let (last, prefix) = parts.split_last().ok_or_else(misplaced)?;
    if *last != "*" || prefix.iter().any(|p| p.contains('*')) {
        return Err(misplaced());
    }
    // Trailing separators after the star ("1.*.") would be dropped by the
    // split; insist the star really ends the pattern.
    if !text.ends_with('*') {
        return Err(misplaced());
    }
    let prefix = prefix
        .iter()
        .map(|p| parse_part(text, p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PatternError::Version {
            pattern: untrusted(text),
            source,
        })?;
    let with = |sentinel: Part| {
        let mut parts = prefix.clone();
        parts.push(sentinel);
        parts
    };
    Ok(PatternKind::Wildcard {
        lower: with(Part::Min),
        upper: with(Part::Max),
    })
}

fn parse_bounds(text: &str) -> Result<PatternKind, PatternError> {
    let malformed = || PatternError::MalformedBounds(untrusted(text));
    let (lower, rest) = text.split_once("<=").ok_or_else(malformed)?;
    let rest = rest.trim_start().strip_prefix('v').ok_or_else(malformed)?;
    let upper = rest.trim_start().strip_prefix('<').ok_or_else(malformed)?;
    let (lower, upper) = (lower.trim(), upper.trim());
    if upper.starts_with('=') || lower.is_empty() || upper.is_empty() {
        return Err(malformed());
    }
    let bound = |b: &str| {
        if b.contains(['*', '<', ' ', '\t']) {
            return Err(malformed());
        }
        parse_parts(b).map_err(|source| PatternError::Version {
            pattern: untrusted(text),
            source,
        })
    };
    let (lower, upper) = (bound(lower)?, bound(upper)?);
    if cmp_parts(&lower, &upper).is_ge() {
        return Err(PatternError::EmptyRange(untrusted(text)));
    }
    Ok(PatternKind::Bounds { lower, upper })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn assert_ascending(list: &[&str]) {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                assert!(v(a) < v(b), "{a} should order before {b}");
                assert!(v(b) > v(a), "{b} should order after {a}");
                assert_ne!(v(a), v(b));
            }
        }
    }

    #[test]
    fn parses_parts_at_every_separator() {
        assert_eq!(
            v("1.0.0-beta.2").parts,
            vec![
                Part::Num(1),
                Part::Num(0),
                Part::Num(0),
                Part::Str(b"beta".to_vec()),
                Part::Num(2)
            ]
        );
        assert_eq!(
            v("66.0.3359.117-1").parts,
            [66, 0, 3359, 117, 1].map(Part::Num).to_vec()
        );
        assert_eq!(
            v("1.2a").parts,
            vec![Part::Num(1), Part::Str(b"2a".to_vec())]
        );
        assert_eq!(v("1..0").parts, vec![Part::Num(1), Part::Num(0)]);
    }

    #[test]
    fn orders_the_first_spec_list() {
        assert_ascending(&[
            "a.b", "a", "a.1", "b", "b.1.3", "c", "0.a", "0", "0.1-a", "0.1", "0.1.1", "1.0",
            "1.0.1", "1.1", "2",
        ]);
    }

    #[test]
    fn orders_pre_releases_and_string_parts() {
        assert_ascending(&["1.0.0-beta", "1.0.0-beta.1", "1.0.0-beta.2", "1.0.0"]);
        assert_ascending(&["1.0.0.a", "1.0.0"]);
        assert_ascending(&["1.0.a", "1.0.b"]);
        assert_ascending(&["1.a", "1.0"]);
        assert_ascending(&["1.2a", "1.1"]);
    }

    #[test]
    fn treats_separator_variants_as_equal() {
        let all = [
            "1.0.0",
            "1_0.0",
            "1.0-0",
            "1.0.000",
            "001.0.000",
            "1.0.0.",
            "1.0.0____",
            "1..0.0",
            "1._.0.0",
            "1",
            "1.0",
            "1.0.0.0",
            "1.0-",
            "1.0.",
        ];
        for a in all {
            for b in all {
                assert_eq!(v(a), v(b), "{a} should equal {b}");
                assert_eq!(v(a).cmp(&v(b)), Ordering::Equal);
            }
        }
    }

    #[test]
    fn keeps_distinct_versions_unequal() {
        let all = [
            "0", "1", "a", "1.1", "1.2", "1.a", "1.0.b", "2.0", "a.1", "0.0.0.c",
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                if i != j {
                    assert_ne!(v(a), v(b), "{a} should differ from {b}");
                }
            }
        }
    }

    #[test]
    fn keeps_the_published_text() {
        assert_eq!(v("1.0-0").as_str(), "1.0-0");
        assert_eq!(v("1.0-0").to_string(), "1.0-0");
    }

    #[test]
    fn rejects_numbers_beyond_u64() {
        assert_eq!(
            Version::parse("1.18446744073709551616").unwrap_err(),
            VersionError::NumberTooLarge {
                version: "1.18446744073709551616".into(),
                part: "18446744073709551616".into()
            }
        );
        assert!(Version::parse("18446744073709551615").is_ok());
    }

    #[test]
    fn rejects_versions_without_parts() {
        for s in ["", ".", "-_."] {
            assert_eq!(
                Version::parse(s).unwrap_err(),
                VersionError::NoParts(s.into())
            );
        }
    }

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn exact_pattern_matches_equal_versions() {
        assert!(p("1.13.7").matches(&v("1.13.7")));
        assert!(p("1.13.7").matches(&v("1.13.7.0")));
        assert!(p("1.13.7").matches(&v("1-13_7")));
        assert!(!p("1.13.7").matches(&v("1.13.8")));
        assert!(!p("1.13.7").matches(&v("1.13.7-rc1")));
    }

    #[test]
    fn wildcard_pattern_matches_its_prefix() {
        for yes in ["1", "1.0", "1.0.0-beta", "1.7.3", "1.a", "1.99999"] {
            assert!(p("1.*").matches(&v(yes)), "1.* should match {yes}");
        }
        for no in ["0.1", "2.0", "0", "a", "2"] {
            assert!(!p("1.*").matches(&v(no)), "1.* should not match {no}");
        }
        assert!(p("1.2.*").matches(&v("1.2")));
        assert!(!p("1.2.*").matches(&v("1.3")));
        assert!(p("1-*").matches(&v("1.5")));
    }

    #[test]
    fn lone_star_matches_everything() {
        for s in ["0", "a.b", "1.0", "999.9", "0.0.0.c"] {
            assert!(p("*").matches(&v(s)));
        }
    }

    #[test]
    fn rejects_a_star_that_is_not_the_last_part() {
        for s in ["*.1", "1.*.2", "1*", "1.2*", "1.*.", "**"] {
            assert_eq!(
                Pattern::parse(s).unwrap_err(),
                PatternError::MisplacedStar(s.into()),
                "{s}"
            );
        }
    }

    #[test]
    fn bounds_pattern_is_lower_inclusive_upper_exclusive() {
        let b = p("2.3 <= v < 3.0");
        for yes in ["2.3", "2.99", "2.3.0", "3.0-rc1"] {
            assert!(b.matches(&v(yes)), "should match {yes}");
        }
        for no in ["3.0", "2.2.9", "3", "4"] {
            assert!(!b.matches(&v(no)), "should not match {no}");
        }
        assert!(p("1.0 <= v < 2.0").matches(&v("2.0-rc1")));
    }

    #[test]
    fn bounds_pattern_allows_free_whitespace() {
        assert!(p("2.3<=v<3.0").matches(&v("2.5")));
        assert!(p("  2.3 <=   v   <   3.0 ").matches(&v("2.5")));
    }

    #[test]
    fn rejects_malformed_bounds() {
        for s in [
            "2.3 <= x < 3",
            "<= v < 3",
            "2 <= v <",
            "2 <= v <= 3",
            "2 < v < 3",
        ] {
            assert!(
                matches!(Pattern::parse(s), Err(PatternError::MalformedBounds(_))),
                "{s}"
            );
        }
        assert!(matches!(
            Pattern::parse("3 <= v < 2"),
            Err(PatternError::EmptyRange(_))
        ));
        assert!(matches!(
            Pattern::parse("1.0 <= v < 1"),
            Err(PatternError::EmptyRange(_))
        ));
    }

    #[test]
    fn rejects_other_tools_range_syntax_instead_of_never_matching() {
        for s in [
            ">= 1.0",
            "1.0 - 2.0",
            "1.0 || 2.0",
            "1.0 beta",
            "~> 1.2",
            "1.*\t2",
        ] {
            assert!(
                matches!(Pattern::parse(s), Err(PatternError::Whitespace(_))),
                "{s}"
            );
        }
        // Spaces around the whole pattern are not part of it.
        assert!(p(" 1.0 ").matches(&v("1.0")));
    }

    #[test]
    fn published_versions_of_separators_only_equal_zero() {
        let empty = Version::parse_published("...").unwrap();
        assert_eq!(empty.as_str(), "...");
        assert_eq!(empty, v("0"));
        assert_eq!(empty, Version::parse_published("-_.").unwrap());
        assert!(empty < v("0.1"));
        assert!(empty > v("a"));
        assert!(p("*").matches(&empty));
        assert!(p("0").matches(&empty));
        assert!(!p("1.*").matches(&empty));
        assert!(Version::parse_published("").is_err());
        // A publisher may still not give such a version.
        assert!(Version::parse("...").is_err());
    }

    #[test]
    fn errors_show_hostile_text_escaped_and_cut() {
        let hostile = format!("1.{}*", "\x1b[2J".repeat(1000));
        let shown = Pattern::parse(&hostile).unwrap_err().to_string();
        assert!(!shown.contains('\x1b'), "{shown}");
        assert!(shown.len() < 600, "{} bytes", shown.len());
        let long = format!("1.{}", "9".repeat(10_000));
        let shown = Version::parse(&long).unwrap_err().to_string();
        assert!(shown.len() < 600, "{} bytes", shown.len());
    }

    #[test]
    fn rejects_empty_patterns() {
        assert!(matches!(Pattern::parse("  "), Err(PatternError::Empty(_))));
    }

    #[test]
    fn patterns_in_other_tools_syntax_are_refused_with_what_to_write_instead() {
        for (pattern, hint) in [
            ("^1.2", "1.2 <= v < 2"),
            ("~1.2", "1.2.*"),
            ("1.x", "1.*"),
            ("1.X.3", "1.*"),
            ("v1.*", "without the 'v'"),
            ("V2", "without the 'v'"),
            ("latest", "'*'"),
            ("Latest", "'*'"),
            (">=1.0", "LOWER <= v < UPPER"),
        ] {
            let err = Pattern::parse(pattern).unwrap_err();
            assert!(matches!(err, PatternError::Foreign { .. }), "{pattern}");
            assert!(err.to_string().contains(hint), "{pattern}: {err}");
        }
        // Tako's own forms and versions that merely contain such letters still parse.
        for pattern in [
            "1.*",
            "*",
            "1.2 <= v < 2",
            "x",
            "1.2-x1",
            "vortex.1",
            "2024.05",
        ] {
            assert!(Pattern::parse(pattern).is_ok(), "{pattern}");
        }
    }

    fn version_strategy() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            (0u64..4).prop_map(|n| n.to_string()),
            Just("00".to_string()),
            Just("18446744073709551615".to_string()),
            "[a-c]{1,2}",
            "[0-2][a-b]",
        ];
        (
            proptest::collection::vec((part, "[.\\-_]{1,2}"), 1..5),
            any::<bool>(),
        )
            .prop_map(|(parts, trailing)| {
                let mut s = String::new();
                for (i, (p, sep)) in parts.iter().enumerate() {
                    if i > 0 {
                        s.push_str(sep);
                    }
                    s.push_str(p);
                }
                if trailing {
                    s.push('.');
                }
                s
            })
    }

    /// Independent statement of the wildcard rule: after padding with zeros,
    /// the version starts with the pattern's prefix.
    fn has_prefix(version: &Version, prefix: &[Part]) -> bool {
        prefix
            .iter()
            .enumerate()
            .all(|(i, p)| version.parts.get(i).unwrap_or(&ZERO) == p)
    }

    proptest! {
        #[test]
        fn order_is_total_and_consistent_with_equality(
            a in version_strategy(), b in version_strategy(), c in version_strategy()
        ) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a == b, a.cmp(&b).is_eq());
            prop_assert_eq!(a.cmp(&a), Ordering::Equal);
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            if a == b {
                prop_assert_eq!(a.cmp(&c), b.cmp(&c));
            }
        }

        #[test]
        fn wildcard_selects_exactly_the_versions_with_its_prefix(
            prefix in version_strategy(), x in version_strategy()
        ) {
            let pat = p(&format!("{prefix}.*"));
            let x = v(&x);
            prop_assert_eq!(pat.matches(&x), has_prefix(&x, &v(&prefix).parts));
        }

        #[test]
        fn bounds_select_only_versions_within_them(
            a in version_strategy(), b in version_strategy(), x in version_strategy()
        ) {
            let (lo, hi) = (v(&a), v(&b));
            prop_assume!(lo < hi);
            let pat = p(&format!("{a} <= v < {b}"));
            let x = v(&x);
            prop_assert_eq!(pat.matches(&x), lo <= x && x < hi);
        }

        #[test]
        fn exact_selects_only_equal_versions(a in version_strategy(), x in version_strategy()) {
            prop_assert_eq!(p(&a).matches(&v(&x)), v(&a) == v(&x));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Version::parse(&s);
            let _ = Pattern::parse(&s);
        }
    }
}
