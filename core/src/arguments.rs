//! A call's keyword arguments, kept as the JSON object text the guest decodes.
//!
//! A JSON request body is usually the arguments, whole: it is checked (valid JSON, an object)
//! without building it and handed to the guest as it came, instead of being parsed into a map
//! and written out again. That also keeps what a map would change: integers beyond 64 bits and
//! the exact text of numbers reach Python as the caller wrote them, as on IXON's ingress.

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

/// Keyword arguments: the text of one JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arguments(String);

impl Default for Arguments {
    fn default() -> Self {
        Self("{}".to_string())
    }
}

impl From<Map<String, Value>> for Arguments {
    fn from(map: Map<String, Value>) -> Self {
        // A map of JSON values always serialises.
        Self(serde_json::to_string(&map).unwrap_or_else(|_| "{}".into()))
    }
}

impl From<Value> for Arguments {
    /// An object's fields; any other value gives no arguments.
    fn from(value: Value) -> Self {
        match value {
            Value::Object(map) => map.into(),
            _ => Self::default(),
        }
    }
}

/// Why a text is not arguments.
#[derive(Debug, thiserror::Error)]
pub enum ArgumentsError {
    #[error("it is not UTF-8 ({0})")]
    NotUtf8(std::str::Utf8Error),
    #[error("{0}")]
    Invalid(serde_json::Error),
    #[error("it nests deeper than {MAX_NESTING} levels")]
    TooDeep,
}

/// How deeply arguments may nest: serde_json's own limit, which bodies always had.
pub const MAX_NESTING: usize = 128;

impl Arguments {
    /// `text` as arguments when it is a JSON object (`Ok(None)` when it is valid JSON of another
    /// kind). Checked in full (syntax, UTF-8, at most [`MAX_NESTING`] levels), nothing built.
    pub fn from_json_text(text: &[u8]) -> Result<Option<Self>, ArgumentsError> {
        let text = std::str::from_utf8(text).map_err(ArgumentsError::NotUtf8)?;
        // Measured first: checking the syntax does not recurse (so has no limit of its own),
        // and Python's decoder would stop at its recursion limit with an error of another kind.
        if wasmfn_host_apis::docstore::json::nesting(text.as_bytes()) > MAX_NESTING {
            return Err(ArgumentsError::TooDeep);
        }
        serde_json::from_str::<IgnoredAny>(text).map_err(ArgumentsError::Invalid)?;
        let object = text.trim_start().starts_with('{');
        Ok(object.then(|| Self(text.trim().to_string())))
    }

    /// These arguments over `defaults`: a name in both keeps the value here (JSON text as it is,
    /// not rebuilt). The defaults come first in the text; Python's `json`, like serde_json, keeps
    /// the last value of a repeated name.
    pub fn over(self, defaults: &Map<String, Value>) -> Self {
        if defaults.is_empty() {
            return self;
        }
        let defaults = serde_json::to_string(defaults).unwrap_or_else(|_| "{}".into());
        let members = &defaults[1..defaults.len() - 1];
        if self.is_empty() {
            Self(format!("{{{members}}}"))
        } else {
            Self(format!("{{{members},{}", self.after_brace()))
        }
    }

    /// The text after the object's `{` (and blanks): its members, then `}`.
    fn after_brace(&self) -> &str {
        self.0[1..].trim_start()
    }

    /// The JSON text, as the guest receives it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The arguments as a map (parsed: for the few places that look inside).
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// Whether there are none (`{}`): read off the text, which is always one object.
    pub fn is_empty(&self) -> bool {
        self.after_brace().starts_with('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_kept_as_written_and_other_json_is_not_arguments() {
        let text = br#" {"big": 123456789012345678901234567890, "x": 1.50} "#;
        let arguments = Arguments::from_json_text(text).unwrap().unwrap();
        assert_eq!(arguments.as_str(), r#"{"big": 123456789012345678901234567890, "x": 1.50}"#);
        assert_eq!(arguments.to_map()["x"], 1.5);
        assert!(Arguments::from_json_text(b"[1, 2]").unwrap().is_none());
        assert!(Arguments::from_json_text(b"\"text\"").unwrap().is_none());
        assert!(matches!(
            Arguments::from_json_text(br#"{"a": 1} trailing"#),
            Err(ArgumentsError::Invalid(_))
        ));
        assert!(matches!(
            Arguments::from_json_text(b"{\"a\": \"\xff\"}"),
            Err(ArgumentsError::NotUtf8(_))
        ));
        let nested = |levels: usize| {
            let deep = format!("{}{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
            format!("{{\"a\": {deep}}}")
        };
        assert!(Arguments::from_json_text(nested(MAX_NESTING).as_bytes()).unwrap().is_some());
        assert!(matches!(
            Arguments::from_json_text(nested(MAX_NESTING + 1).as_bytes()),
            Err(ArgumentsError::TooDeep)
        ));
    }

    #[test]
    fn arguments_over_defaults_keep_their_text_and_win() {
        let defaults: Map<String, Value> =
            serde_json::from_str(r#"{"name": "query", "n": "1"}"#).unwrap();
        let body = Arguments::from_json_text(br#"{"name": 1.50, "big": 123456789012345678901}"#)
            .unwrap()
            .unwrap();
        let merged = body.over(&defaults);
        assert_eq!(
            merged.as_str(),
            r#"{"name":"query","n":"1","name": 1.50, "big": 123456789012345678901}"#
        );
        let map = merged.to_map();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["name", "n", "big"]);
        assert_eq!(map["name"], 1.5);
        let empty = Arguments::from_json_text(b"{ }").unwrap().unwrap().over(&defaults);
        assert_eq!(empty.as_str(), r#"{"name":"query","n":"1"}"#);
        assert_eq!(Arguments::default().over(&Map::new()), Arguments::default());
    }

    #[test]
    fn maps_and_values_become_text() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"name": "Ada"}"#).unwrap();
        assert_eq!(Arguments::from(map).as_str(), r#"{"name":"Ada"}"#);
        assert_eq!(Arguments::from(Value::Bool(true)), Arguments::default());
        assert!(Arguments::default().is_empty());
    }
}
