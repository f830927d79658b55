//! `expected_codes` of HTTP and HTTPS monitors, parsed once at apply.
//!
//! Octavia accepts one code (`200`), a comma list (`200, 202`) or one range
//! (`200-204`); HAProxy turns them into a regex alternation. Here they become
//! a small set of inclusive ranges, so a probe's answer is matched without
//! any string work. Lists of ranges (`200-204,301`) are accepted too: they
//! cost nothing and say what they mean.

use std::fmt;

/// The status codes a monitor counts as healthy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExpectedCodes {
    /// Inclusive ranges, in the order written.
    ranges: Vec<(u16, u16)>,
}

impl Default for ExpectedCodes {
    /// Octavia's default: `200`.
    fn default() -> Self {
        ExpectedCodes {
            ranges: vec![(200, 200)],
        }
    }
}

impl ExpectedCodes {
    /// Parses `200`, `200,202`, `200-204` (and lists mixing both).
    pub fn parse(text: &str) -> Result<ExpectedCodes, String> {
        let bad = |why: &str| format!("expected_codes {text:?}: {why}");
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad("empty entry"));
            }
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (code(low.trim()), code(high.trim())),
                None => (code(part), code(part)),
            };
            let (Some(low), Some(high)) = (low, high) else {
                return Err(bad("codes are three digits (100-599)"));
            };
            if low > high {
                return Err(bad("a range goes from low to high"));
            }
            ranges.push((low, high));
        }
        Ok(ExpectedCodes { ranges })
    }

    pub fn matches(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&status))
    }
}

fn code(text: &str) -> Option<u16> {
    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|c| (100..=599).contains(c))
}

impl fmt::Display for ExpectedCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (low, high)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_list_and_range() {
        let table: &[(&str, &[u16], &[u16])] = &[
            ("200", &[200], &[201, 199, 500]),
            ("200,202", &[200, 202], &[201, 203]),
            ("200 , 202,301", &[200, 202, 301], &[302]),
            ("200-204", &[200, 201, 204], &[199, 205]),
            ("200-204,404", &[203, 404], &[205, 403]),
        ];
        for (text, good, bad) in table {
            let codes = ExpectedCodes::parse(text).unwrap();
            for c in *good {
                assert!(codes.matches(*c), "{text} should accept {c}");
            }
            for c in *bad {
                assert!(!codes.matches(*c), "{text} should refuse {c}");
            }
        }
        assert!(ExpectedCodes::default().matches(200));
        assert_eq!(
            ExpectedCodes::parse("200-204, 302").unwrap().to_string(),
            "200-204,302"
        );
    }

    #[test]
    fn malformed_codes_are_refused() {
        for text in [
            "", "20", "2000", "abc", "204-200", "200,", "200-", "099", "600",
        ] {
            assert!(ExpectedCodes::parse(text).is_err(), "{text:?}");
        }
    }
}
