//! The configuration files of IXON's development mode, read when a function folder is served or
//! invoked (never when it is built or deployed: they often hold a developer's credentials).
//!
//! As ixoncdkingress in dev mode, the first of these in the folder gives `context.config`:
//! `context_values.yaml`, then `context_values.json`, then the legacy `context_config.json`'s
//! `"values"`. Its values replace, key by key, those of `function.toml`'s `[config]`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The files looked for, in order; the first that exists is used.
pub const FILES: [&str; 3] = ["context_values.yaml", "context_values.json", "context_config.json"];

/// Larger files are refused: these hold a handful of settings.
const MAX_BYTES: u64 = 1024 * 1024;

/// The folder's dev values (none when it has no such file).
pub fn read(dir: &Path) -> Result<BTreeMap<String, Value>> {
    let Some((name, path)) =
        FILES.iter().map(|name| (*name, dir.join(name))).find(|(_, path)| path.is_file())
    else {
        return Ok(BTreeMap::new());
    };
    let size = path.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    if size > MAX_BYTES {
        bail!("{} is {size} bytes; dev configuration files may hold at most 1 MiB", path.display());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value = if name.ends_with(".yaml") {
        if text.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_norway::from_str(&text)
                .with_context(|| format!("{} is not valid YAML", path.display()))?
        }
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?
    };
    let values = if name == "context_config.json" {
        match value {
            Value::Object(mut legacy) => legacy.remove("values").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    } else {
        value
    };
    match values {
        Value::Object(map) => Ok(map.into_iter().collect()),
        // ixoncdkingress ignores a legacy file without "values".
        Value::Null if name == "context_config.json" => Ok(BTreeMap::new()),
        other => bail!(
            "{} must hold a mapping of configuration keys to values, not {}",
            path.display(),
            match other {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                _ => "a single value",
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_wins_over_json_and_keeps_nesting_and_types() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("context_values.json"), r#"{"from": "json"}"#).unwrap();
        std::fs::write(
            dir.path().join("context_values.yaml"),
            "# dev values\nserviceAccount:\n  username: user\n  password: pass\nport: 465\nflags: [a, b]\n",
        )
        .unwrap();
        let values = read(dir.path()).unwrap();
        assert_eq!(values["serviceAccount"]["username"], "user");
        assert_eq!(values["port"], 465);
        assert_eq!(values["flags"], serde_json::json!(["a", "b"]));
        assert!(!values.contains_key("from"));
    }

    #[test]
    fn json_then_the_legacy_values_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("context_config.json"),
            r#"{"values": {"custom_fields": [{"ixon": "serial", "zendesk": 1191}]}, "other": 1}"#,
        )
        .unwrap();
        let legacy = read(dir.path()).unwrap();
        assert_eq!(legacy["custom_fields"][0]["zendesk"], 1191);
        assert!(!legacy.contains_key("other"));
        std::fs::write(dir.path().join("context_values.json"), r#"{"smtp_port": "465"}"#).unwrap();
        assert_eq!(read(dir.path()).unwrap()["smtp_port"], "465");
        assert!(read(&dir.path().join("missing-folder")).unwrap().is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_mapping_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("context_values.yaml"), "- a\n- b\n").unwrap();
        let error = format!("{:#}", read(dir.path()).unwrap_err());
        assert!(error.contains("context_values.yaml must hold a mapping"), "{error}");
        std::fs::write(dir.path().join("context_values.yaml"), "a: [unclosed\n").unwrap();
        let error = format!("{:#}", read(dir.path()).unwrap_err());
        assert!(error.contains("is not valid YAML"), "{error}");
    }
}
