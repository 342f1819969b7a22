//! Card numbers: the Luhn check and the issuers' prefixes and lengths.

/// Whether `digits` (ASCII digits) have a valid Luhn check digit.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The leading `n` digits as a number.
fn prefix(digits: &[u8], n: usize) -> u32 {
    digits[..n]
        .iter()
        .fold(0, |acc, &d| acc * 10 + u32::from(d - b'0'))
}

/// Whether `digits` start like a card of some brand and have that brand's
/// length. No brand starts with 1, 7, 8, 9 or 0.
///
/// | brand | prefixes | lengths |
/// |---|---|---|
/// | Visa | 4 | 13, 16, 19 |
/// | Mastercard | 51–55, 2221–2720 | 16 |
/// | Mir | 2200–2204 | 16–19 |
/// | American Express | 34, 37 | 15 |
/// | Diners Club | 36, 38, 39, 300–305, 3095 | 14–19 |
/// | JCB | 3528–3589 | 16–19 |
/// | Discover | 6011, 644–649, 65 | 16–19 |
/// | UnionPay | 62 | 16–19 |
/// | Maestro | 50, 56–69 | 12–19 |
pub(crate) fn issuer_matches(digits: &[u8]) -> bool {
    let len = digits.len();
    if !(12..=19).contains(&len) {
        return false;
    }
    match digits[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => {
            let p2 = prefix(digits, 2);
            ((51..=55).contains(&p2) && len == 16) || p2 == 50 || (56..=59).contains(&p2)
        }
        b'2' => {
            let p4 = prefix(digits, 4);
            ((2221..=2720).contains(&p4) && len == 16) || ((2200..=2204).contains(&p4) && len >= 16)
        }
        b'3' => {
            let p2 = prefix(digits, 2);
            let p3 = prefix(digits, 3);
            let p4 = prefix(digits, 4);
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((matches!(p2, 36 | 38 | 39) || (300..=305).contains(&p3) || p4 == 3095)
                    && len >= 14)
                || ((3528..=3589).contains(&p4) && len >= 16)
        }
        // Maestro (56–69, 12–19) covers every 6: Discover, UnionPay, RuPay 60.
        b'6' => true,
        _ => false,
    }
}

/// A card number: a valid Luhn sum and a real issuer's prefix and length.
pub(crate) fn is_card(digits: &[u8]) -> bool {
    issuer_matches(digits) && luhn_valid(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        for ok in ["4111111111111111", "79927398713", "378282246310005", "0"] {
            assert!(luhn_valid(ok.as_bytes()), "{ok}");
        }
        for bad in ["4111111111111112", "79927398710", "378282246310006"] {
            assert!(!luhn_valid(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn issuers() {
        let cards = [
            ("4111111111111111", true),    // Visa 16
            ("4222222222222", true),       // Visa 13
            ("4111111111111111110", true), // Visa 19 (prefix/length only)
            ("41111111111111", false),     // Visa 14
            ("5555555555554444", true),    // Mastercard 55
            ("2221000000000009", true),    // Mastercard 2221
            ("2720990000000007", true),    // Mastercard 2720
            ("2721000000000000", false),   // past the 2-series
            ("5105105105105100", true),    // Mastercard 51
            ("510510510510510", false),    // 51 with 15 digits
            ("378282246310005", true),     // Amex
            ("3782822463100050", false),   // Amex with 16
            ("30569309025904", true),      // Diners 305, 14
            ("36227206271667", true),      // Diners 36
            ("3530111333300000", true),    // JCB
            ("6011111111111117", true),    // Discover
            ("6200000000000005", true),    // UnionPay
            ("6759649826438453", true),    // Maestro
            ("501800000009", true),        // Maestro 12
            ("1732612345678", false),      // epoch millis
            ("9111111111111111", false),   // no brand starts with 9
            ("7111111111111111", false),
            ("8111111111111111", false),
            ("0411111111111111", false),
        ];
        for (digits, want) in cards {
            assert_eq!(issuer_matches(digits.as_bytes()), want, "{digits}");
        }
    }
}
