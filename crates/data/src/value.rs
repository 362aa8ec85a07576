//! Reading one field: the lenient number parser and the category canonicaliser.
//!
//! Real IoT CSVs write the same value many ways. `0`, `0.0` and an empty field all
//! mean "absent" (the Edge-IIoTset capture scripts wrote `0` for normal traffic and
//! `0.0` for attacks, so a parser that keeps the spellings apart hands the label to
//! the model). Flags are hex (`0x0018`), ports in BoT-IoT's ICMP rows too. Shifted
//! rows put text where a number belongs. This module turns every spelling into one
//! value, and remembers which placeholder spelling was used so `audit` can show the
//! leak without the model ever seeing it.

use std::borrow::Cow;

/// How an absent (zero) value was written. Only `audit` looks at this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spelling {
    /// An empty field.
    Empty = 0,
    /// `0`.
    Zero = 1,
    /// A zero with a decimal point: `0.0`, `0.00`, `.0`.
    ZeroPoint = 2,
    /// Another zero: `0x0000`, `-0`, `00`, `0e0`.
    OtherZero = 3,
}

impl Spelling {
    pub const ALL: [Spelling; 4] = [
        Spelling::Empty,
        Spelling::Zero,
        Spelling::ZeroPoint,
        Spelling::OtherZero,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Spelling::Empty => "(empty)",
            Spelling::Zero => "0",
            Spelling::ZeroPoint => "0.0",
            Spelling::OtherZero => "other zero",
        }
    }
}

/// One field read as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// Absent: numerically zero, written as the given placeholder spelling.
    Absent(Spelling),
    /// A non-zero number (decimal, hex or boolean).
    Number(f64),
    /// A missing-value marker (`NaN`, `NA`, `null`, `?`, infinities): imputed later.
    Missing,
    /// Text where a number was expected (a shifted row, a name): treated as missing
    /// and counted per column.
    Text,
}

pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Parses a field leniently as a number.
pub fn parse_cell(raw: &[u8]) -> Cell {
    let b = trim(raw);
    // Fast paths for the commonest spellings (checked by length: no memcmp calls).
    match b.len() {
        0 => return Cell::Absent(Spelling::Empty),
        1 if b[0] == b'0' => return Cell::Absent(Spelling::Zero),
        1 if b[0].is_ascii_digit() => return Cell::Number(f64::from(b[0] - b'0')),
        3 if b[0] == b'0' && b[1] == b'.' && b[2] == b'0' => {
            return Cell::Absent(Spelling::ZeroPoint);
        }
        _ => {}
    }
    if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        let digits = &b[2..];
        if digits.len() <= 16 && digits.iter().all(u8::is_ascii_hexdigit) {
            // from_utf8 cannot fail on hex digits; u64::from_str_radix cannot
            // overflow on at most 16 of them.
            let v = std::str::from_utf8(digits)
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok());
            return match v {
                Some(0) => Cell::Absent(Spelling::OtherZero),
                Some(v) => Cell::Number(v as f64),
                None => Cell::Text,
            };
        }
        return Cell::Text;
    }
    if let Ok(v) = fast_float2::parse::<f64, _>(b) {
        if !v.is_finite() {
            return Cell::Missing;
        }
        if v == 0.0 {
            let spelling = if b.contains(&b'.') && !b.iter().any(|c| *c == b'e' || *c == b'E') {
                Spelling::ZeroPoint
            } else {
                Spelling::OtherZero
            };
            return Cell::Absent(spelling);
        }
        return Cell::Number(v);
    }
    match b {
        b"true" | b"True" | b"TRUE" => Cell::Number(1.0),
        b"false" | b"False" | b"FALSE" => Cell::Absent(Spelling::OtherZero),
        _ => {
            let s = String::from_utf8_lossy(b);
            if crate::schema::is_missing_token(&s) {
                Cell::Missing
            } else {
                Cell::Text
            }
        }
    }
}

/// True when the field is an absent value (any zero spelling or empty). Cheaper
/// than [`parse_cell`] for text such as addresses.
pub fn is_absent(raw: &[u8]) -> bool {
    let b = trim(raw);
    match b.first() {
        None => true,
        Some(b'0' | b'-' | b'.' | b'+' | b'f' | b'F') => matches!(parse_cell(b), Cell::Absent(_)),
        Some(_) => false,
    }
}

/// The value a [`Cell`] stands for in a numeric column: absent is 0, missing and
/// text are NaN (imputed by the fitted pipeline).
pub fn cell_value(cell: Cell) -> f32 {
    match cell {
        Cell::Absent(_) => 0.0,
        Cell::Number(v) => v as f32,
        Cell::Missing | Cell::Text => f32::NAN,
    }
}

/// The canonical spelling of a categorical value: absent spellings become the
/// empty string, numbers their shortest decimal form (`1.0` and `0x1` -> `1`),
/// text is trimmed.
pub fn canonical_category(raw: &[u8]) -> Cow<'_, str> {
    match parse_cell(raw) {
        Cell::Absent(_) => Cow::Borrowed(""),
        Cell::Number(v) => Cow::Owned(format!("{v}")),
        Cell::Missing => Cow::Borrowed(""),
        Cell::Text => String::from_utf8_lossy(trim(raw)),
    }
}

/// The display name of the canonical absent category.
pub const ABSENT_CATEGORY: &str = "<absent>";

/// True when the field looks like an IPv4 or IPv6 address or a MAC address.
pub fn looks_like_address(raw: &[u8]) -> bool {
    let b = trim(raw);
    if b.len() < 7 {
        return false;
    }
    let dots = b.iter().filter(|c| **c == b'.').count();
    if dots == 3 && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return b
            .split(|c| *c == b'.')
            .all(|p| !p.is_empty() && p.len() <= 3);
    }
    let colons = b.iter().filter(|c| **c == b':').count();
    colons >= 2
        && b.iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
}

/// True when the field looks like a date or a time of day.
pub fn looks_like_datetime(raw: &[u8]) -> bool {
    let b = trim(raw);
    if b.len() < 8 {
        return false;
    }
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let has_month = MONTHS.iter().any(|m| b.windows(3).any(|w| w == *m));
    let has_clock = b.windows(8).any(|w| {
        w[0].is_ascii_digit()
            && w[1].is_ascii_digit()
            && w[2] == b':'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
            && w[5] == b':'
            && w[6].is_ascii_digit()
            && w[7].is_ascii_digit()
    });
    let has_iso_date = b.windows(10).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && w[4] == b'-'
            && w[5..7].iter().all(u8::is_ascii_digit)
            && w[7] == b'-'
            && w[8..].iter().all(u8::is_ascii_digit)
    });
    has_clock || has_iso_date || (has_month && b.iter().filter(|c| c.is_ascii_digit()).count() >= 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_spellings_are_one_value() {
        assert_eq!(parse_cell(b""), Cell::Absent(Spelling::Empty));
        assert_eq!(parse_cell(b"0"), Cell::Absent(Spelling::Zero));
        assert_eq!(parse_cell(b"0.0"), Cell::Absent(Spelling::ZeroPoint));
        assert_eq!(parse_cell(b" 0.00 "), Cell::Absent(Spelling::ZeroPoint));
        assert_eq!(parse_cell(b"0x0000"), Cell::Absent(Spelling::OtherZero));
        for s in [&b""[..], b"0", b"0.0", b"0x0", b"-0"] {
            assert_eq!(
                cell_value(parse_cell(s)),
                0.0,
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
    }

    #[test]
    fn numbers_in_every_notation() {
        assert_eq!(parse_cell(b"0x0018"), Cell::Number(24.0));
        assert_eq!(parse_cell(b"0X2fc7"), Cell::Number(12231.0));
        assert_eq!(parse_cell(b"5353.0"), Cell::Number(5353.0));
        assert_eq!(parse_cell(b"-1.5e3"), Cell::Number(-1500.0));
        assert_eq!(parse_cell(b"True"), Cell::Number(1.0));
        assert_eq!(parse_cell(b"3739984308"), Cell::Number(3739984308.0));
    }

    #[test]
    fn text_and_missing_markers() {
        assert_eq!(parse_cell(b"_ipps._tcp.local"), Cell::Text);
        assert_eq!(parse_cell(b"0xZZ"), Cell::Text);
        assert_eq!(parse_cell(b"NaN"), Cell::Missing);
        assert_eq!(parse_cell(b"null"), Cell::Missing);
        assert_eq!(parse_cell(b"inf"), Cell::Missing);
        assert!(cell_value(Cell::Text).is_nan());
    }

    #[test]
    fn categories_are_canonical() {
        assert_eq!(canonical_category(b"1.0"), "1");
        assert_eq!(canonical_category(b"0x0001"), "1");
        assert_eq!(canonical_category(b"0.0"), "");
        assert_eq!(canonical_category(b"0"), "");
        assert_eq!(canonical_category(b" GET "), "GET");
    }

    #[test]
    fn recognises_addresses_and_times() {
        assert!(looks_like_address(b"192.168.0.151"));
        assert!(looks_like_address(b"fe80::1:2"));
        assert!(looks_like_address(b"00:1b:21:3a:4f:5e"));
        assert!(!looks_like_address(b"5353.0"));
        assert!(!looks_like_address(b"1.2.3"));
        assert!(looks_like_datetime(b"Jun 12, 2020 09:40:01.290201000 UTC"));
        assert!(looks_like_datetime(b" 2021 22:49:20.400794000 "));
        assert!(looks_like_datetime(b"2020-06-12T09:40:01"));
        assert!(!looks_like_datetime(b"12345678"));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// A finite number written as Rust prints it reads back exactly; zero is absent.
        #[test]
        fn decimal_numbers_read_back(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            let text = format!("{x}");
            let cell = parse_cell(text.as_bytes());
            if x == 0.0 {
                prop_assert!(matches!(cell, Cell::Absent(_)), "{} -> {:?}", text, cell);
            } else {
                prop_assert_eq!(cell, Cell::Number(x), "{}", text);
            }
        }

        /// Hex of any width up to 16 digits, either case, reads as its value.
        #[test]
        fn hex_reads_as_its_value(v in any::<u64>(), upper in any::<bool>()) {
            let text = if upper { format!("0X{v:X}") } else { format!("0x{v:x}") };
            let cell = parse_cell(text.as_bytes());
            if v == 0 {
                prop_assert_eq!(cell, Cell::Absent(Spelling::OtherZero));
            } else {
                prop_assert_eq!(cell, Cell::Number(v as f64));
            }
        }

        /// Any bytes: surrounding spaces change nothing, `is_absent` agrees with
        /// `parse_cell`, and the numeric value is 0 exactly for absent cells.
        #[test]
        fn any_bytes_parse_consistently(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), proptest::sample::select(b"0.-+xeEfalsNn ".to_vec())],
                0..12,
            ),
            pad in proptest::sample::select(vec![&b""[..], b" ", b"\t", b"  \r"]),
        ) {
            let cell = parse_cell(&bytes);
            let padded: Vec<u8> = [pad, &bytes[..], pad].concat();
            prop_assert_eq!(parse_cell(&padded), cell);
            prop_assert_eq!(is_absent(&bytes), matches!(cell, Cell::Absent(_)));
            let v = cell_value(cell);
            match cell {
                Cell::Absent(_) => prop_assert_eq!(v, 0.0),
                Cell::Number(x) => prop_assert!(x != 0.0 && x.is_finite()),
                Cell::Missing | Cell::Text => prop_assert!(v.is_nan()),
            }
        }
    }
}
