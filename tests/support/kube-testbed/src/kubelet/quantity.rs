//! Parsing of Kubernetes resource quantities such as `256Mi` into bytes.

/// Parses a quantity (`128974848`, `129e6`, `129M`, `123Mi`, `1.5Gi`) into a
/// whole number of bytes, rounding fractions up as Kubernetes does. Returns
/// `None` for text that is not a quantity.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            10f64.powi(power)
        }
        _ => return None,
    };
    let bytes = (value * multiplier).ceil();
    (bytes >= 0.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn quantity_binary_suffixes() {
        assert_eq!(parse_bytes("123Mi"), Some(123 * 1024 * 1024));
        assert_eq!(parse_bytes("1Gi"), Some(1024 * 1024 * 1024));
        assert_eq!(parse_bytes("64Ki"), Some(64 * 1024));
    }

    #[test]
    fn quantity_decimal_forms() {
        assert_eq!(parse_bytes("128974848"), Some(128_974_848));
        assert_eq!(parse_bytes("129e6"), Some(129_000_000));
        assert_eq!(parse_bytes("129M"), Some(129_000_000));
        assert_eq!(parse_bytes("1.5k"), Some(1500));
    }

    #[test]
    fn quantity_rejects_garbage() {
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("12Xi"), None);
    }
}
