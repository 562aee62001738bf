//! Names that appear in URLs (spaces, functions, keys, subscriptions): one rule, checked by
//! every module that takes a name, without depending on the manifest.

/// A URL-safe function name from a folder name: `My Function` → `my-function`.
pub fn name_from_folder(folder: &str) -> String {
    let name: String = folder
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
        .collect();
    name.trim_start_matches(['-', '_']).chars().take(64).collect()
}

/// Function names appear in URLs: lowercase letters, digits, `-` and `_`, at most 64.
pub fn validate_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "function name '{name}' is invalid: use 1-64 lowercase letters, digits, '-' or '_', \
             starting with a letter or digit"
        ))
    }
}
