//! Parsing the JSON that carries queries and documents. serde_json stops at 128 levels, but a
//! filter documented to nest 100 levels takes two JSON levels per `$and` (an object and a
//! list), so its text nests about 200 deep. The text is measured first, without recursion, and
//! parsed without serde_json's limit only when it is within [`MAX_JSON_NESTING`], so the parser's
//! recursion stays bounded and a too-deep text gets a message that says so.

use serde::Deserialize;
use serde_json::Value;

use super::query::MAX_DEPTH;

/// How deeply the JSON text of a call may nest: room for a filter of [`MAX_DEPTH`] levels
/// (two JSON levels each) inside a request body.
pub const MAX_JSON_NESTING: usize = 2 * MAX_DEPTH + 8;

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error(
        "nests deeper than {} levels of JSON (filters nest at most {} levels)",
        MAX_JSON_NESTING,
        MAX_DEPTH
    )]
    TooDeep,
    #[error("is not valid JSON: {0}")]
    Invalid(String),
}

/// Parses `text` as JSON nesting at most [`MAX_JSON_NESTING`] levels.
pub fn parse_json(text: &[u8]) -> Result<Value, JsonError> {
    if nesting(text) > MAX_JSON_NESTING {
        return Err(JsonError::TooDeep);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    deserializer.disable_recursion_limit();
    let value =
        Value::deserialize(&mut deserializer).map_err(|e| JsonError::Invalid(e.to_string()))?;
    deserializer.end().map_err(|e| JsonError::Invalid(e.to_string()))?;
    Ok(value)
}

/// The deepest nesting of `[` and `{` outside strings (of a valid text; any text is measured
/// without failing).
pub fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in text {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn text_up_to_the_limit_parses_and_one_level_more_is_too_deep() {
        assert!(parse_json(nested(MAX_JSON_NESTING).as_bytes()).is_ok());
        assert_eq!(parse_json(nested(MAX_JSON_NESTING + 1).as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!(r#"{{"a": "{}\"{}"}}"#, "[".repeat(500), "{".repeat(500));
        assert_eq!(parse_json(text.as_bytes()).unwrap()["a"].as_str().unwrap().len(), 1001);
    }

    #[test]
    fn trailing_text_is_invalid() {
        assert!(matches!(parse_json(b"{} x"), Err(JsonError::Invalid(_))));
    }
}
