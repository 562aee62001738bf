//! Object keys: what a function may name an object, checked before any storage call.

use super::ObjectError;

/// The longest key accepted, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks a key: a relative path of non-empty segments, none `.` or `..`, no NUL or other
/// control characters, no backslash, at most [`MAX_KEY_BYTES`].
pub fn check_key(key: &str) -> Result<(), ObjectError> {
    let invalid =
        |why: &str| Err(ObjectError::InvalidKey(format!("object key {}: {why}", shown(key))));
    if key.is_empty() {
        return invalid("is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return invalid(&format!("is longer than {MAX_KEY_BYTES} bytes"));
    }
    if key.starts_with('/') {
        return invalid("must be relative (no leading '/')");
    }
    if key.contains('\0') {
        return invalid("contains a NUL character");
    }
    if key.chars().any(char::is_control) {
        return invalid("contains a control character");
    }
    if key.contains('\\') {
        return invalid("contains a backslash; use '/' between parts");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("has an empty part ('//' or a trailing '/')"),
            "." | ".." => return invalid("has a '.' or '..' part"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a listing prefix: like a key, but may be empty or end with '/'.
pub fn check_prefix(prefix: &str) -> Result<(), ObjectError> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return if prefix.is_empty() { Ok(()) } else { check_key(prefix) };
    }
    check_key(trimmed)
}

/// The key for an error message: quoted, control characters escaped, long keys cut.
fn shown(key: &str) -> String {
    let cut: String = key.chars().take(80).collect();
    let more = if cut.len() < key.len() { "..." } else { "" };
    format!("{:?}{more}", cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_or_confuse_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/./b",
            "a//b",
            "a/",
            "nul\0byte",
            "tab\tkey",
            "back\\slash",
            "..",
        ] {
            let error = check_key(key).expect_err(key);
            assert!(matches!(error, ObjectError::InvalidKey(_)), "{key:?}: {error}");
        }
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        for key in ["a", "reports/2026/11.csv", "with space.txt", "ünïcode/€", "a..b", ".hidden"]
        {
            check_key(key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        }
        assert!(check_prefix("").is_ok() && check_prefix("reports/").is_ok());
        assert!(check_prefix("../").is_err() && check_prefix("/").is_err());
    }

    #[test]
    fn the_message_names_the_key_and_the_reason() {
        let message = check_key("a/../b").unwrap_err().to_string();
        assert!(message.contains("\"a/../b\"") && message.contains("'..'"), "{message}");
    }
}
