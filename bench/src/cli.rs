//! Flag values the binaries parse alike.

use std::time::{SystemTime, UNIX_EPOCH};

/// A number above 0.
pub fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// `NAME=VALUE`.
pub fn parse_pair<T: std::str::FromStr>(text: &str) -> Result<(String, T), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a valid value"))?;
    Ok((name.to_owned(), value))
}

/// A short id that keeps this run's Lease names, keys and owners apart from
/// other runs'.
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}", nanos ^ std::process::id().rotate_left(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_are_checked() {
        assert_eq!(parse_positive("3"), Ok(3));
        assert!(parse_positive("0").is_err());
        assert_eq!(parse_pair::<u32>("etcd=42"), Ok(("etcd".to_owned(), 42)));
        assert!(parse_pair::<u32>("etcd").is_err());
        assert!(parse_pair::<u32>("etcd=x").is_err());
    }
}
