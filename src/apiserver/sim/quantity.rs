//! Resource quantities ("500m", "1.5", "16Gi", "1e3") as the scheduler compares
//! them: CPU in millicores, everything else in whole units.

/// The value of a quantity in base units; `None` when it is not a quantity.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(end);
    let number: f64 = number.parse().ok()?;
    Some(number * multiplier(suffix)?)
}

fn multiplier(suffix: &str) -> Option<f64> {
    let binary = |power: i32| Some(1024f64.powi(power));
    let decimal = |exp: i32| Some(10f64.powi(exp));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        exp => {
            let e: i32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            decimal(e)
        }
    }
}

/// CPU in millicores, rounded up as Kubernetes rounds `MilliValue`.
pub fn millis(q: &str) -> Option<i64> {
    parse(q).map(|v| (v * 1000.0).ceil() as i64)
}

/// Whole units (bytes, pods), rounded up.
pub fn units(q: &str) -> Option<i64> {
    parse(q).map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_every_notation() {
        assert_eq!(millis("500m"), Some(500));
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(millis("0.1"), Some(100));
        assert_eq!(units("16Gi"), Some(16 << 30));
        assert_eq!(units("128Mi"), Some(128 << 20));
        assert_eq!(units("1G"), Some(1_000_000_000));
        assert_eq!(units("1e3"), Some(1000));
        assert_eq!(units("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(units("110"), Some(110));
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("1Zi"), None);
    }
}
