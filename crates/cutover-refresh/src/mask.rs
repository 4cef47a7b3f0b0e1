//! The column rules applied to values: deterministic, keyed masking.
//!
//! Everything keyed derives from HMAC-SHA256 under the policy's secret, with a
//! label per use, so the same input maps to the same output in every table and
//! every run with the same secret, and nothing can be reversed without it.
//! Integers are masked by a keyed Feistel permutation of the 64-bit space, so a
//! unique integer column stays unique (no collisions, ever); text and UUIDs get
//! 128 bits or more of HMAC output, where a collision is not a practical event.

use cutover_db::{LogicalType, Value, canonical};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fakes::{Locale, Uniqueness};
use crate::policy::{FakeKind, Rule};

type HmacSha256 = Hmac<Sha256>;

/// Rounds of the Feistel permutation for integers.
const FEISTEL_ROUNDS: u8 = 8;

/// Applies column rules with one secret.
pub struct Masker {
    /// HMAC-SHA256 keyed with the secret, cloned for each value.
    keyed: HmacSha256,
    /// The locale of fakes.
    locale: Locale,
    /// Compiled `regex` rules, by pattern.
    patterns: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<regex::Regex>>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never shown.
        formatter.debug_struct("Masker").finish_non_exhaustive()
    }
}

/// Why a rule could not produce a value of the column's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskError {
    /// The rule.
    pub rule: &'static str,
    /// The column's type.
    pub logical: LogicalType,
}

impl std::fmt::Display for MaskError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "rule {} cannot produce a {} value",
            self.rule,
            self.logical.name()
        )
    }
}

impl Masker {
    /// A masker keyed with `secret` (the bytes of the policy's secret variable).
    pub fn new(secret: &[u8]) -> Masker {
        Masker {
            keyed: HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length"),
            locale: Locale::default(),
            patterns: std::sync::Mutex::default(),
        }
    }

    /// The masker of `policy` (its locale) keyed with `secret`.
    pub fn for_policy(policy: &crate::policy::Policy, secret: &[u8]) -> Masker {
        Masker::new(secret).with_locale(policy.locale)
    }

    /// The masker with fakes in `locale`.
    pub fn with_locale(mut self, locale: Locale) -> Masker {
        self.locale = locale;
        self
    }

    /// The compiled pattern, compiled once per masker.
    fn pattern(&self, pattern: &str) -> Option<std::sync::Arc<regex::Regex>> {
        let mut patterns = self.patterns.lock().ok()?;
        if let Some(compiled) = patterns.get(pattern) {
            return Some(compiled.clone());
        }
        let compiled = std::sync::Arc::new(regex::Regex::new(pattern).ok()?);
        patterns.insert(pattern.to_owned(), compiled.clone());
        Some(compiled)
    }

    fn mac(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(label.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A public identity of the secret (a keyed digest of a fixed label):
    /// equal for equal secrets, and telling nothing of the secret.
    pub fn key_identity(&self) -> String {
        hex(&self.mac("key identity", &[])[..8])
    }

    fn number(&self, label: &str, input: &[u8], modulo: u64) -> u64 {
        let digest = self.mac(label, &[input]);
        u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % modulo.max(1)
    }

    /// A keyed permutation of the 64-bit integers (balanced Feistel network):
    /// distinct inputs always give distinct outputs.
    pub fn permute(&self, value: i64) -> i64 {
        let bits = value as u64;
        let (mut left, mut right) = ((bits >> 32) as u32, bits as u32);
        for round in 0..FEISTEL_ROUNDS {
            let digest = self.mac("feistel", &[&[round], &right.to_be_bytes()]);
            let mixed = left ^ u32::from_be_bytes(digest[..4].try_into().unwrap_or_default());
            left = right;
            right = mixed;
        }
        ((u64::from(left) << 32) | u64::from(right)) as i64
    }

    /// The value `rule` gives a column of type `logical`. `entity` is the
    /// value of the `shift-date` rule's `by` column (or the row's key).
    pub fn apply(
        &self,
        rule: &Rule,
        value: &Value,
        logical: LogicalType,
        entity: Option<&Value>,
    ) -> Result<Value, MaskError> {
        self.apply_to_column(rule, value, logical, entity, false)
    }

    /// [`Masker::apply`] on a column that must stay unique when `unique`:
    /// fakes then take their unique form ([`Uniqueness::Unique`]).
    pub fn apply_to_column(
        &self,
        rule: &Rule,
        value: &Value,
        logical: LogicalType,
        entity: Option<&Value>,
        unique: bool,
    ) -> Result<Value, MaskError> {
        let error = || MaskError {
            rule: rule.name(),
            logical,
        };
        if value.is_null() && !matches!(rule, Rule::Fixed(_)) {
            return Ok(Value::Null);
        }
        // The canonical encoding keys the digests: only the rules that take one encode.
        let encoded = || canonical::encode(value);
        Ok(match rule {
            Rule::Keep => value.clone(),
            Rule::Null => Value::Null,
            Rule::Fixed(text) => Value::from_text(logical, text).ok_or_else(error)?,
            Rule::RedactBlob => match logical {
                LogicalType::Bytes => Value::Bytes(Vec::new()),
                LogicalType::Text => Value::Text(String::new()),
                _ => return Err(error()),
            },
            Rule::Regex {
                pattern,
                replacement,
            } => match value {
                Value::Text(text) => {
                    let pattern = self.pattern(pattern).ok_or_else(error)?;
                    Value::Text(pattern.replace_all(text, replacement.as_str()).into_owned())
                }
                _ => return Err(error()),
            },
            Rule::Hash => match value {
                Value::Int(number) => Value::Int(self.permute(*number)),
                Value::Numeric(number) => match number.to_i64() {
                    Some(integer) => Value::Int(self.permute(integer)),
                    None => return Err(error()),
                },
                Value::Text(_) => {
                    let digest = self.mac("hash", &[&encoded()]);
                    Value::Text(hex(&digest[..16]))
                }
                Value::Uuid(_) => {
                    let digest = self.mac("hash", &[&encoded()]);
                    let mut bytes: [u8; 16] = digest[..16].try_into().unwrap_or_default();
                    bytes[6] = (bytes[6] & 0x0f) | 0x40;
                    bytes[8] = (bytes[8] & 0x3f) | 0x80;
                    Value::Uuid(bytes)
                }
                Value::Bytes(_) => Value::Bytes(self.mac("hash", &[&encoded()]).to_vec()),
                _ => return Err(error()),
            },
            Rule::Fake(kind) => {
                let input = encoded();
                let uniqueness = if unique && kind.can_be_unique() {
                    Uniqueness::Unique(self.tag(value, &input))
                } else {
                    Uniqueness::Any
                };
                self.fake(*kind, value, &input, uniqueness)
                    .ok_or_else(error)?
            }
            Rule::ShiftDate { max_days, .. } => {
                let entity = entity.map_or_else(encoded, canonical::encode);
                // Never zero: a shift of 0 days would copy the real date.
                let max = u64::from((*max_days).max(1));
                let magnitude = self.number("shift-date", &entity, max * 2) as i64;
                let days = if magnitude < max as i64 {
                    -(magnitude + 1)
                } else {
                    magnitude - max as i64 + 1
                };
                match value {
                    Value::Date(date) => Value::Date(date.saturating_add(days as i32)),
                    Value::Timestamp(micros) => {
                        Value::Timestamp(micros.saturating_add(days * 86_400_000_000))
                    }
                    Value::TimestampTz(micros) => {
                        Value::TimestampTz(micros.saturating_add(days * 86_400_000_000))
                    }
                    _ => return Err(error()),
                }
            }
        })
    }

    /// A value's keyed 64-bit tag: distinct integers always have distinct
    /// tags (the Feistel permutation); anything else has a keyed 64-bit
    /// digest, permuted.
    fn tag(&self, value: &Value, input: &[u8]) -> u64 {
        let base = match value {
            Value::Int(number) => *number,
            _ => {
                let digest = self.mac("fake:unique", &[input]);
                i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
            }
        };
        self.permute(base) as u64
    }

    fn fake(
        &self,
        kind: FakeKind,
        value: &Value,
        input: &[u8],
        uniqueness: Uniqueness,
    ) -> Option<Value> {
        // One keyed digest per value, its 8-byte windows drawn for each part.
        let digest = self.mac(kind.label(), &[input]);
        let draw = |window: usize, modulo: u64| {
            let start = (window % 4) * 8;
            u64::from_be_bytes(digest[start..start + 8].try_into().unwrap_or_default())
                % modulo.max(1)
        };
        Some(match kind {
            FakeKind::Date => {
                // Within a year of the original, the same way every time.
                let days = draw(0, 731) as i64 - 365;
                match value {
                    Value::Date(date) => Value::Date(date.saturating_add(days as i32)),
                    Value::Timestamp(micros) => {
                        Value::Timestamp(micros.saturating_add(days * 86_400_000_000))
                    }
                    Value::TimestampTz(micros) => {
                        Value::TimestampTz(micros.saturating_add(days * 86_400_000_000))
                    }
                    _ => return None,
                }
            }
            _ => Value::Text(crate::fakes::fake_text(
                kind,
                self.locale,
                uniqueness,
                &draw,
            )?),
        })
    }
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn masker() -> Masker {
        Masker::new(b"test secret")
    }

    #[test]
    fn masking_is_deterministic_and_keyed() {
        let text = Value::Text("1234-567-890".into());
        let first = masker()
            .apply(&Rule::Hash, &text, LogicalType::Text, None)
            .expect("hash");
        let again = masker()
            .apply(&Rule::Hash, &text, LogicalType::Text, None)
            .expect("hash");
        let other_key = Masker::new(b"another secret")
            .apply(&Rule::Hash, &text, LogicalType::Text, None)
            .expect("hash");
        assert_eq!(first, again);
        assert_ne!(first, other_key);
        assert_ne!(first, text);
        let name = masker()
            .apply(
                &Rule::Fake(FakeKind::FullName),
                &Value::Text("Jan Jansen".into()),
                LogicalType::Text,
                None,
            )
            .expect("fake");
        assert_eq!(
            name,
            masker()
                .apply(
                    &Rule::Fake(FakeKind::FullName),
                    &Value::Text("Jan Jansen".into()),
                    LogicalType::Text,
                    None
                )
                .expect("fake")
        );
    }

    #[test]
    fn a_date_shift_is_the_same_for_one_entity_and_bounded() {
        let rule = Rule::ShiftDate {
            by: Some("patient_id".into()),
            max_days: 30,
        };
        let patient = Value::Int(42);
        let shift = |date: i32| match masker().apply(
            &rule,
            &Value::Date(date),
            LogicalType::Date,
            Some(&patient),
        ) {
            Ok(Value::Date(shifted)) => shifted - date,
            other => panic!("{other:?}"),
        };
        assert_eq!(shift(19_000), shift(19_500));
        assert!(shift(19_000).abs() <= 30);
        // Every entity is shifted, never by zero days.
        for entity in 0..2_000 {
            let shifted = masker().apply(
                &Rule::ShiftDate {
                    by: None,
                    max_days: 3,
                },
                &Value::Date(19_000),
                LogicalType::Date,
                Some(&Value::Int(entity)),
            );
            let Ok(Value::Date(shifted)) = shifted else {
                panic!("{shifted:?}");
            };
            assert!((1..=3).contains(&(shifted - 19_000).abs()), "{entity}");
        }
        let micros = 19_000i64 * 86_400_000_000;
        let shifted = masker().apply(
            &rule,
            &Value::TimestampTz(micros),
            LogicalType::TimestampTz,
            Some(&patient),
        );
        assert_eq!(
            shifted,
            Ok(Value::TimestampTz(
                micros + i64::from(shift(19_000)) * 86_400_000_000
            ))
        );
    }

    #[test]
    fn nulls_stay_null_and_fixed_values_take_the_column_type() {
        assert_eq!(
            masker().apply(&Rule::Hash, &Value::Null, LogicalType::Text, None),
            Ok(Value::Null)
        );
        assert_eq!(
            masker().apply(
                &Rule::Fixed("7".into()),
                &Value::Null,
                LogicalType::Integer,
                None
            ),
            Ok(Value::Int(7))
        );
        assert!(
            masker()
                .apply(
                    &Rule::Fixed("x".into()),
                    &Value::Int(1),
                    LogicalType::Integer,
                    None
                )
                .is_err()
        );
        assert_eq!(
            masker().apply(
                &Rule::Regex {
                    pattern: r"\d".into(),
                    replacement: "#".into()
                },
                &Value::Text("room 12".into()),
                LogicalType::Text,
                None
            ),
            Ok(Value::Text("room ##".into()))
        );
        assert_eq!(
            masker().apply(
                &Rule::RedactBlob,
                &Value::Bytes(vec![1, 2]),
                LogicalType::Bytes,
                None
            ),
            Ok(Value::Bytes(Vec::new()))
        );
    }

    proptest! {
        #[test]
        fn hashing_integers_never_collides(a: i64, b: i64) {
            let masker = masker();
            prop_assert_eq!(masker.permute(a) == masker.permute(b), a == b);
        }
    }

    #[test]
    fn hashing_a_unique_integer_column_keeps_it_unique() {
        let masker = masker();
        let mut seen = std::collections::HashSet::new();
        for value in 0..100_000i64 {
            assert!(seen.insert(masker.permute(value)), "collision at {value}");
        }
    }

    /// A million distinct inputs of each kind with a unique form, masked on
    /// a unique column, give a million distinct outputs (text inputs, and
    /// integers for one kind).
    #[test]
    fn fakes_on_a_unique_column_never_collide() {
        const N: i64 = 1_000_000;
        let masker = masker().with_locale(Locale::EnCa);
        let kinds = [
            FakeKind::FirstName,
            FakeKind::LastName,
            FakeKind::FullName,
            FakeKind::Email,
            FakeKind::Phone,
            FakeKind::Address,
            FakeKind::City,
        ];
        std::thread::scope(|scope| {
            for kind in kinds {
                let masker = &masker;
                scope.spawn(move || {
                    let mut seen = std::collections::HashSet::with_capacity(N as usize);
                    for index in 0..N {
                        let input = if kind == FakeKind::Email {
                            Value::Int(index)
                        } else {
                            Value::Text(format!("person {index}"))
                        };
                        let rule = Rule::Fake(kind);
                        match masker.apply_to_column(&rule, &input, LogicalType::Text, None, true) {
                            Ok(Value::Text(text)) => {
                                assert!(seen.insert(text), "{kind:?}: a collision at {index}")
                            }
                            other => panic!("{kind:?}: {other:?}"),
                        }
                    }
                });
            }
        });
        // Kinds without a unique form say so, and check refuses them on unique keys.
        for kind in [
            FakeKind::PostalCode,
            FakeKind::Date,
            FakeKind::Province,
            FakeKind::HealthCard,
        ] {
            assert!(!kind.can_be_unique(), "{kind:?}");
        }
    }
}
