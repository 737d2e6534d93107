//! Strict parsing of the raw text that bronze keeps: dates, timestamps, numbers, flags and
//! clinical codes. Nothing is ever shifted or guessed: `2023-02-30`, `03/14/2023`, `N/A` and
//! the empty string are not dates, and a value that does not parse is reported as invalid,
//! for a rule to quarantine.

use chrono::{NaiveDate, NaiveDateTime};

/// The outcome of parsing one raw value.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed<T> {
    /// No value (JSON null or absent).
    Missing,
    /// A value of the type.
    Valid(T),
    /// Text that is not a value of the type.
    Invalid,
}

impl<T> Parsed<T> {
    /// The value, if valid.
    pub fn valid(self) -> Option<T> {
        match self {
            Self::Valid(v) => Some(v),
            Self::Missing | Self::Invalid => None,
        }
    }

    /// Whether the text was present but not a value of the type.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid)
    }
}

/// Whether `text` has the shape of the pattern, where `9` is an ASCII digit and any other
/// character stands for itself.
fn shaped(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(c, p)| {
            if p == b'9' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

/// A calendar date `YYYY-MM-DD` that exists (`2023-02-30` does not).
pub fn date(raw: Option<&str>) -> Parsed<NaiveDate> {
    let Some(text) = raw else {
        return Parsed::Missing;
    };
    let text = text.trim();
    if !shaped(text, "9999-99-99") {
        return Parsed::Invalid;
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(d) => Parsed::Valid(d),
        Err(_) => Parsed::Invalid,
    }
}

/// A timestamp `YYYY-MM-DDTHH:MM:SS` (facility local time, kept without a zone) that exists.
pub fn timestamp(raw: Option<&str>) -> Parsed<NaiveDateTime> {
    let Some(text) = raw else {
        return Parsed::Missing;
    };
    let text = text.trim();
    if !shaped(text, "9999-99-99T99:99:99") {
        return Parsed::Invalid;
    }
    match NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        Ok(t) => Parsed::Valid(t),
        Err(_) => Parsed::Invalid,
    }
}

/// A finite decimal number (`7.2`, `-1`, `1e3`); `N/A`, `<5`, `NaN` and empty are invalid.
pub fn number(raw: Option<&str>) -> Parsed<f64> {
    let Some(text) = raw else {
        return Parsed::Missing;
    };
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return Parsed::Invalid;
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Parsed::Valid(v),
        _ => Parsed::Invalid,
    }
}

/// A flag: `true`/`false` (any case), `1`/`0`, `y`/`n`, `yes`/`no`.
pub fn flag(raw: Option<&str>) -> Parsed<bool> {
    let Some(text) = raw else {
        return Parsed::Missing;
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "y" | "yes" => Parsed::Valid(true),
        "false" | "0" | "n" | "no" => Parsed::Valid(false),
        _ => Parsed::Invalid,
    }
}

/// Text trimmed, with empty text as missing.
pub fn text(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The clinical code systems of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSystem {
    /// ICD-10-CM: a letter, two characters, then optionally `.` and 1-4 characters
    /// (`E11.9`, `I10`); stored upper case with the dot.
    Icd10,
    /// CPT: five digits, or four digits and `F`/`T`/`U` (`99213`, `0001F`).
    Cpt,
    /// LOINC: 1-7 digits, `-`, one check digit (`2345-7`).
    Loinc,
    /// RxNorm: a concept id of 1-9 digits.
    RxNorm,
}

/// The normalised code (trimmed, upper case; an ICD-10 code written without its dot gets it
/// back), or `Invalid` when it does not have the system's format.
pub fn code(raw: Option<&str>, system: CodeSystem) -> Parsed<String> {
    let Some(text) = raw else {
        return Parsed::Missing;
    };
    let t = text.trim().to_ascii_uppercase();
    if t.is_empty() {
        return Parsed::Missing;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    let normalised = match system {
        CodeSystem::Icd10 => {
            let (head, tail) = match t.split_once('.') {
                Some((h, tail)) => (h.to_owned(), Some(tail.to_owned())),
                None if t.len() > 3 => (t[..3].to_owned(), Some(t[3..].to_owned())),
                None => (t.clone(), None),
            };
            let head_ok = head.len() == 3
                && head.as_bytes()[0].is_ascii_uppercase()
                && head.as_bytes()[1].is_ascii_digit()
                && alnum(&head);
            let tail_ok = tail
                .as_deref()
                .is_none_or(|s| (1..=4).contains(&s.len()) && alnum(s));
            (head_ok && tail_ok).then(|| match tail {
                Some(tail) => format!("{head}.{tail}"),
                None => head,
            })
        }
        CodeSystem::Cpt => {
            let ok = t.len() == 5
                && (digits(&t)
                    || (digits(&t[..4]) && matches!(t.as_bytes()[4], b'F' | b'T' | b'U')));
            ok.then_some(t)
        }
        CodeSystem::Loinc => match t.split_once('-') {
            Some((num, check))
                if (1..=7).contains(&num.len())
                    && digits(num)
                    && check.len() == 1
                    && digits(check) =>
            {
                Some(t)
            }
            _ => None,
        },
        CodeSystem::RxNorm => (t.len() <= 9 && digits(&t)).then_some(t),
    };
    normalised.map_or(Parsed::Invalid, Parsed::Valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert_eq!(
            date(Some("2024-02-29")),
            Parsed::Valid(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        for bad in [
            "2023-02-30",
            "N/A",
            "03/14/2023",
            "",
            "2023-2-3",
            "2023-13-01",
            "20230101",
        ] {
            assert!(date(Some(bad)).is_invalid(), "{bad}");
        }
        assert_eq!(date(None), Parsed::Missing);
        assert!(timestamp(Some("2024-01-02T03:04:05")).valid().is_some());
        assert!(timestamp(Some("2024-01-02 03:04:05")).is_invalid());
        assert!(timestamp(Some("2024-01-02T25:00:00")).is_invalid());
    }

    #[test]
    fn numbers_flags_and_codes() {
        assert_eq!(number(Some(" 7.25 ")), Parsed::Valid(7.25));
        for bad in ["N/A", "<5", "NaN", "", "inf", "1,5"] {
            assert!(number(Some(bad)).is_invalid(), "{bad}");
        }
        assert_eq!(flag(Some("TRUE")), Parsed::Valid(true));
        assert!(flag(Some("maybe")).is_invalid());
        assert_eq!(
            code(Some(" e11.9 "), CodeSystem::Icd10),
            Parsed::Valid("E11.9".into())
        );
        assert_eq!(
            code(Some("E119"), CodeSystem::Icd10),
            Parsed::Valid("E11.9".into())
        );
        assert_eq!(
            code(Some("I10"), CodeSystem::Icd10),
            Parsed::Valid("I10".into())
        );
        assert!(code(Some("11.9"), CodeSystem::Icd10).is_invalid());
        assert_eq!(
            code(Some("99213"), CodeSystem::Cpt),
            Parsed::Valid("99213".into())
        );
        assert_eq!(
            code(Some("0001f"), CodeSystem::Cpt),
            Parsed::Valid("0001F".into())
        );
        assert!(code(Some("9921"), CodeSystem::Cpt).is_invalid());
        assert_eq!(
            code(Some("2345-7"), CodeSystem::Loinc),
            Parsed::Valid("2345-7".into())
        );
        assert!(code(Some("2345"), CodeSystem::Loinc).is_invalid());
        assert_eq!(
            code(Some("860975"), CodeSystem::RxNorm),
            Parsed::Valid("860975".into())
        );
        assert!(code(Some("RX1"), CodeSystem::RxNorm).is_invalid());
        assert_eq!(code(Some("  "), CodeSystem::RxNorm), Parsed::Missing);
    }
}
