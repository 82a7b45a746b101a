//! Identifiers parsed once at the boundary.
//!
//! Salesforce record ids come in a 15-character case-sensitive form and an 18-character form
//! whose last three characters encode the case of the first fifteen. We always store and emit
//! the 18-character form, and accept either on input; an 18-character id whose suffix does not
//! match its body is rejected, because it was almost certainly mangled (lower-cased, truncated).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not 15 or 18 characters long.
    #[error("a Salesforce id has 15 or 18 characters, got {0}")]
    Length(usize),
    /// A character outside `[0-9A-Za-z]`.
    #[error("a Salesforce id has only letters and digits, got {0:?}")]
    Character(char),
    /// The 18-character checksum suffix does not match the first 15 characters.
    #[error("the checksum suffix of {0} does not match its first 15 characters")]
    Checksum(String),
    /// The id is valid but is not of the expected object (key prefix).
    #[error("{id} is not a {expected} id (key prefix {prefix})")]
    WrongObject {
        id: String,
        expected: &'static str,
        prefix: &'static str,
    },
    /// A model version that is not `name-vN`.
    #[error("a model version looks like churn-v3, got {0:?}")]
    ModelVersion(String),
}

/// [`SALESFORCE_ID_FORMAT`] for an Account id (key prefix `001`).
pub const SALESFORCE_ACCOUNT_ID_FORMAT: &str = "salesforce-account-id";

/// The custom OpenAPI string `format` of Salesforce record ids (15 or 18 characters, the
/// 18-character form's suffix being the case checksum of the first fifteen); contract tests
/// generate valid ids for it (`scripts/schemathesis_hooks.py`).
pub const SALESFORCE_ID_FORMAT: &str = "salesforce-id";

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The three-character case-checksum suffix of a 15-character id.
fn checksum_suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_index, chunk) in id15.chunks(5).enumerate() {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out[chunk_index] = SUFFIX_ALPHABET[bits];
    }
    out
}

/// An 18-character Salesforce record id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SalesforceId(String);

impl SalesforceId {
    /// Parses a 15- or 18-character id; the result is always the 18-character form.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bytes = raw.as_bytes();
        if let Some(bad) = raw.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(IdError::Character(bad));
        }
        match bytes.len() {
            15 => {
                let suffix = checksum_suffix(bytes);
                let mut s = raw.to_owned();
                s.push_str(std::str::from_utf8(&suffix).unwrap_or_default());
                Ok(Self(s))
            }
            18 => {
                let expected = checksum_suffix(&bytes[..15]);
                if bytes[15..].eq_ignore_ascii_case(&expected) {
                    let mut s = raw[..15].to_owned();
                    s.push_str(std::str::from_utf8(&expected).unwrap_or_default());
                    Ok(Self(s))
                } else {
                    Err(IdError::Checksum(raw.to_owned()))
                }
            }
            n => Err(IdError::Length(n)),
        }
    }

    /// Builds an id from a three-character key prefix and a serial number (used by the org
    /// simulator to mint ids that look and check like real ones).
    pub fn from_parts(key_prefix: &str, pod: &str, serial: u64) -> Self {
        const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut body = String::with_capacity(15);
        body.push_str(key_prefix);
        body.push_str(pod);
        let width = 15 - body.len();
        let mut digits = vec![b'0'; width];
        let mut n = serial;
        for slot in digits.iter_mut().rev() {
            *slot = B62[(n % 62) as usize];
            n /= 62;
        }
        body.push_str(std::str::from_utf8(&digits).unwrap_or_default());
        // A 15-character alphanumeric body always parses.
        Self::parse(&body).unwrap_or(Self(body))
    }

    /// The three-character key prefix naming the object type (`001` Account, `003` Contact…).
    pub fn key_prefix(&self) -> &str {
        &self.0[..3]
    }

    /// The 18-character form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Refuses an id of another object type.
    pub fn expect_object(
        self,
        expected: &'static str,
        prefix: &'static str,
    ) -> Result<Self, IdError> {
        if self.key_prefix() == prefix {
            Ok(self)
        } else {
            Err(IdError::WrongObject {
                id: self.0,
                expected,
                prefix,
            })
        }
    }
}

impl fmt::Display for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SalesforceId({})", self.0)
    }
}

impl FromStr for SalesforceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SalesforceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SalesforceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for SalesforceId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(15))
            .max_length(Some(18))
            .pattern(Some("^[0-9A-Za-z]{15}([0-9A-Za-z]{3})?$"))
            // What the pattern cannot say: an 18-character id's last three characters are the
            // case checksum of the first fifteen (ids whose suffix does not match are refused).
            .format(Some(utoipa::openapi::SchemaFormat::Custom(
                SALESFORCE_ID_FORMAT.into(),
            )))
            .description(Some("Salesforce record id, 15 or 18 characters; always returned in the 18-character form"))
            .examples([serde_json::json!("0015g00000AbCdEAAV")])
            .into()
    }
}
impl utoipa::ToSchema for SalesforceId {}

/// The schema of a request's `record_ids`: 1 to 200 Account ids (key prefix `001`, 15 or 18
/// characters, the 18-character form checksummed: format [`SALESFORCE_ACCOUNT_ID_FORMAT`]).
pub fn account_ids_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(15))
                .max_length(Some(18))
                .pattern(Some("^001[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$"))
                .format(Some(utoipa::openapi::SchemaFormat::Custom(
                    SALESFORCE_ACCOUNT_ID_FORMAT.into(),
                ))),
        )
        .min_items(Some(1))
        .max_items(Some(200))
        .description(Some("Account ids, 15 or 18 characters; at most 200."))
        .build()
}

/// A Salesforce organisation id (key prefix `00D`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(SalesforceId);

impl OrgId {
    /// Parses an org id; anything but an `00D…` id is refused.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        SalesforceId::parse(raw)?
            .expect_object("Organization", "00D")
            .map(Self)
    }
    /// The 18-character form.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for OrgId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}
impl From<OrgId> for String {
    fn from(value: OrgId) -> Self {
        value.0.0
    }
}
impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A model version: the model's name and a number that only grows, e.g. `churn-v3`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ModelVersion {
    name: String,
    number: u32,
}

impl ModelVersion {
    /// A new version of `name`.
    pub fn new(name: &str, number: u32) -> Result<Self, IdError> {
        Self::parse(&format!("{name}-v{number}"))
    }
    /// Parses `name-vN`, where the name is lower-case letters, digits and `_`.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bad = || IdError::ModelVersion(raw.to_owned());
        let (name, number) = raw.rsplit_once("-v").ok_or_else(bad)?;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let number: u32 = number.parse().map_err(|_| bad())?;
        if !valid_name || number == 0 {
            return Err(bad());
        }
        Ok(Self {
            name: name.to_owned(),
            number,
        })
    }
    /// The model's name (`churn`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The version number (3 in `churn-v3`).
    pub fn number(&self) -> u32 {
        self.number
    }
    /// The next version of the same model.
    pub fn next(&self) -> Self {
        Self {
            name: self.name.clone(),
            number: self.number + 1,
        }
    }
}

impl fmt::Display for ModelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-v{}", self.name, self.number)
    }
}
impl FromStr for ModelVersion {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl Serialize for ModelVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for ModelVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}
impl utoipa::PartialSchema for ModelVersion {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            // The number is a u32: at most nine digits keeps every match parseable.
            .pattern(Some("^[a-z0-9_]+-v[1-9][0-9]{0,8}$"))
            .examples([serde_json::json!("churn-v3")])
            .into()
    }
}
impl utoipa::ToSchema for ModelVersion {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_char_ids_gain_their_checksum() {
        // Known pair from Salesforce documentation examples.
        let id = SalesforceId::parse("001D000000IqhSL").expect("valid");
        assert_eq!(id.as_str(), "001D000000IqhSLIAZ");
        assert_eq!(id.key_prefix(), "001");
    }

    #[test]
    fn eighteen_char_ids_are_checked() {
        assert!(SalesforceId::parse("001D000000IqhSLIAZ").is_ok());
        // Lower-cased suffix is accepted and normalised.
        assert_eq!(
            SalesforceId::parse("001D000000IqhSLiaz")
                .expect("ok")
                .as_str(),
            "001D000000IqhSLIAZ"
        );
        assert_eq!(
            SalesforceId::parse("001D000000IqhSLAAA"),
            Err(IdError::Checksum("001D000000IqhSLAAA".into()))
        );
        assert_eq!(SalesforceId::parse("001"), Err(IdError::Length(3)));
        assert_eq!(
            SalesforceId::parse("001D000000Iqh-L"),
            Err(IdError::Character('-'))
        );
    }

    #[test]
    fn minted_ids_round_trip() {
        for serial in [0, 1, 61, 62, 1_000_000] {
            let id = SalesforceId::from_parts("001", "5g", serial);
            assert_eq!(id.as_str().len(), 18);
            assert_eq!(SalesforceId::parse(id.as_str()).expect("parses"), id);
        }
        assert_ne!(
            SalesforceId::from_parts("001", "5g", 1),
            SalesforceId::from_parts("001", "5g", 2)
        );
    }

    #[test]
    fn org_ids_need_the_org_prefix() {
        assert!(OrgId::parse("00D5g000004ABCD").is_ok());
        assert!(matches!(
            OrgId::parse("001D000000IqhSL"),
            Err(IdError::WrongObject { .. })
        ));
    }

    #[test]
    fn model_versions_parse_and_order() {
        let v = ModelVersion::parse("churn-v3").expect("valid");
        assert_eq!((v.name(), v.number()), ("churn", 3));
        assert_eq!(v.next().to_string(), "churn-v4");
        for bad in ["churn", "churn-v0", "Churn-v1", "-v1", "churn-vx"] {
            assert!(ModelVersion::parse(bad).is_err(), "{bad}");
        }
    }
}
