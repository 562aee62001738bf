//! Property tests of `function.toml` parsing ([`FunctionManifest::parse`]): any text is a
//! manifest or an error, never a panic; generated valid manifests give back what they say;
//! invalid names and versions are refused naming the field.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::access::AccessPolicy;
use super::*;

/// A moderate number of cases unless `PROPTEST_CASES` asks for another; no regression files
/// written into the checkout.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..default }
}

/// A TOML basic string (`"..."`) holding exactly `text`.
fn basic_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as a TOML string: a literal string (`'...'`) when it can be one and `literal` asks
/// for it, a basic string otherwise.
fn toml_string(text: &str, literal: bool) -> String {
    let can_be_literal =
        !text.chars().any(|c| c == '\'' || (c.is_control() && c != '\t') || c == '\u{7f}');
    if literal && can_be_literal {
        format!("'{text}'")
    } else {
        basic_string(text)
    }
}

/// `key` as a TOML key: bare when it can be and `bare` asks for it, quoted otherwise.
fn toml_key(key: &str, bare: bool) -> String {
    let can_be_bare =
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if bare && can_be_bare {
        key.to_string()
    } else {
        basic_string(key)
    }
}

/// A valid function name.
fn valid_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,63}"
}

/// A semantic version with optional pre-release and build parts.
fn semver_text() -> impl Strategy<Value = String> {
    let pre = prop::option::of("[a-z][a-z0-9-]{0,6}(\\.(0|[1-9][0-9]{0,3}|[a-z][a-z0-9]{0,4}))?");
    let build = prop::option::of("[0-9A-Za-z-]{1,8}(\\.[0-9A-Za-z-]{1,8})?");
    (0u64..10_000, 0u64..10_000, 0u64..10_000, pre, build).prop_map(
        |(major, minor, patch, pre, build)| {
            let mut text = format!("{major}.{minor}.{patch}");
            if let Some(pre) = pre {
                text = format!("{text}-{pre}");
            }
            if let Some(build) = build {
                text = format!("{text}+{build}");
            }
            text
        },
    )
}

/// Configuration keys: URL-ish names most of the time, any short text some of the time.
fn config_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[A-Za-z0-9_-]{1,16}", 1 => "\\PC{1,10}", 1 => ".{1,6}"]
}

/// Configuration values: any text, control characters and quotes included.
fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[ -~]{0,20}", 2 => any::<String>(), 1 => Just(String::new())]
}

/// A generated valid `function.toml` and what it says.
#[derive(Debug, Clone)]
struct Generated {
    name: Option<String>,
    version: Option<String>,
    access: Option<AccessPolicy>,
    default_entry: Option<String>,
    config: BTreeMap<String, String>,
    /// How to write it: literal strings, bare keys, an inline config table, line order.
    literal: bool,
    bare: bool,
    inline_config: bool,
    order: Vec<usize>,
}

impl Generated {
    fn text(&self) -> String {
        let mut lines = Vec::new();
        if let Some(name) = &self.name {
            lines.push(format!("name = {}", toml_string(name, self.literal)));
        }
        if let Some(version) = &self.version {
            lines.push(format!("version = {}", toml_string(version, !self.literal)));
        }
        if let Some(access) = self.access {
            let access = match access {
                AccessPolicy::Public => "public",
                AccessPolicy::Key => "key",
            };
            lines.push(format!("access = {}", basic_string(access)));
        }
        if let Some(entry) = &self.default_entry {
            lines.push(format!("default_entry = {}", toml_string(entry, self.literal)));
        }
        let entries: Vec<String> = self
            .config
            .iter()
            .map(|(key, value)| {
                format!("{} = {}", toml_key(key, self.bare), toml_string(value, self.literal))
            })
            .collect();
        if self.inline_config {
            lines.push(format!("config = {{ {} }}", entries.join(", ")));
        }
        // Top-level keys in any order; a `[config]` table must come after them.
        let mut ordered: Vec<String> = Vec::new();
        for index in &self.order {
            if let Some(line) = lines.get(*index) {
                ordered.push(line.clone());
            }
        }
        let mut text = String::from("# generated\n");
        for line in ordered {
            text.push_str(&line);
            text.push('\n');
        }
        if !self.inline_config {
            text.push_str("\n[config]\n");
            for entry in entries {
                text.push_str(&entry);
                text.push('\n');
            }
        }
        text
    }
}

fn generated() -> impl Strategy<Value = Generated> {
    let access = prop::option::of(prop_oneof![Just(AccessPolicy::Public), Just(AccessPolicy::Key)]);
    (
        prop::option::of(valid_name()),
        prop::option::of(semver_text()),
        access,
        prop::option::of("[a-z_][a-z0-9_]{0,8}(\\.[a-z_][a-z0-9_]{0,8})?"),
        prop::collection::btree_map(config_key(), config_value(), 0..6),
        any::<(bool, bool, bool)>(),
        Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_map(
            |(name, version, access, default_entry, config, (literal, bare, inline), order)| {
                Generated {
                    name,
                    version,
                    access,
                    default_entry,
                    config,
                    literal,
                    bare,
                    inline_config: inline,
                    order,
                }
            },
        )
}

/// Names `validate_name` must refuse, each with a reason a user could run into.
fn invalid_name() -> impl Strategy<Value = String> {
    let upper =
        (valid_name(), "[A-Z]", any::<prop::sample::Index>()).prop_map(|(name, upper, at)| {
            let at = at.index(name.len() + 1);
            format!("{}{}{}", &name[..at], upper, &name[at..])
        });
    let bad_char = (valid_name(), "[ ./:@?#%&+=~é\\\\\"'\t]", any::<prop::sample::Index>())
        .prop_map(|(name, bad, at)| {
            let at = at.index(name.len() + 1);
            format!("{}{}{}", &name[..at], bad, &name[at..])
        });
    prop_oneof![
        upper,
        bad_char,
        // A leading '-' or '_'.
        ("[-_]", valid_name()).prop_map(|(lead, name)| format!("{lead}{name}")),
        // Longer than 64.
        "[a-z0-9][a-z0-9_-]{64,90}",
        // Blank: nothing left after trimming.
        "[ \t]{1,6}",
    ]
}

/// Text that is not a semantic version.
fn invalid_version() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9]{1,3}(\\.[0-9]{1,3})?",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "v[0-9]\\.[0-9]\\.[0-9]",
        "0[0-9]\\.[0-9]\\.[0-9]",
        "[0-9]\\.[0-9]\\.[0-9]-",
        "[a-z]{1,8}",
        " [0-9]\\.[0-9]\\.[0-9]",
    ]
}

/// Lines built from the manifest's own vocabulary, to get past TOML syntax into the checks.
fn manifest_like() -> impl Strategy<Value = String> {
    let key = prop::sample::select(
        &[
            "name",
            "version",
            "default_entry",
            "access",
            "config",
            "limits",
            "cron",
            "mqtt",
            "documents",
            "ixon_api",
            "secrets",
            "events",
            "timeout_ms",
            "schedule",
            "collection",
            "allow",
            "env",
            "nmae",
        ][..],
    );
    let value = prop_oneof![
        Just("\"x\"".to_string()),
        Just("\"1.2.3\"".to_string()),
        Just("\"public\"".to_string()),
        Just("\"@daily\"".to_string()),
        Just("\"*/5 * * * *\"".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[\"GET MyUser\"]".to_string()),
        Just("{ env = \"TOKEN\" }".to_string()),
        Just("[{ name = \"n\", schedule = \"@daily\" }]".to_string()),
        "\"[ -~]{0,12}\"",
        "[0-9]{1,20}",
    ];
    let header = prop::sample::select(
        &[
            "[config]",
            "[limits]",
            "[documents]",
            "[ixon_api]",
            "[secrets]",
            "[[cron]]",
            "[[mqtt]]",
            "[[events]]",
        ][..],
    );
    let line = prop_oneof![
        3 => (key, value).prop_map(|(key, value)| format!("{key} = {value}")),
        1 => header.prop_map(str::to_string),
        1 => "[ -~]{0,20}",
    ];
    prop::collection::vec(line, 0..10).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text is a manifest or an error message; a manifest that parses holds only checked
    /// values (a valid or empty name, a semantic version, valid cron trigger names).
    #[test]
    fn any_text_parses_or_is_refused_without_panicking(
        text in prop_oneof![
            any::<String>(),
            "[a-z_= \"\\[\\]\\.0-9\n{},'#-]{0,120}",
            manifest_like(),
        ]
    ) {
        match FunctionManifest::parse(&text) {
            Ok(manifest) => {
                prop_assert!(manifest.name.is_empty() || validate_name(&manifest.name).is_ok());
                prop_assert!(semver::Version::parse(&manifest.version).is_ok());
                prop_assert!(super::cron::validate_triggers(&manifest.cron).is_ok());
            }
            Err(message) => prop_assert!(!message.trim().is_empty()),
        }
    }

    /// A generated manifest gives back its name, version, access, default entry and exactly
    /// its configuration map; what it leaves out takes the defaults.
    #[test]
    fn valid_manifests_round_trip(generated in generated()) {
        let text = generated.text();
        let manifest = match FunctionManifest::parse(&text) {
            Ok(manifest) => manifest,
            Err(error) => return Err(TestCaseError::fail(format!("{error}\n{text}"))),
        };
        prop_assert_eq!(&manifest.name, generated.name.as_deref().unwrap_or(""), "{}", text);
        prop_assert_eq!(&manifest.version, generated.version.as_deref().unwrap_or("0.1.0"));
        prop_assert_eq!(manifest.access, generated.access);
        prop_assert_eq!(&manifest.default_entry, &generated.default_entry);
        let strings: BTreeMap<String, serde_json::Value> =
            generated.config.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
        prop_assert_eq!(&manifest.config, &strings, "{}", text);
        prop_assert!(manifest.cron.is_empty() && manifest.mqtt.is_empty());
    }

    /// A name that cannot appear in a URL is refused, and the message names the field and the
    /// name as written.
    #[test]
    fn invalid_names_are_refused_naming_the_field(
        name in invalid_name(),
        literal in any::<bool>(),
    ) {
        let text = format!("name = {}\nversion = \"1.0.0\"\n", toml_string(&name, literal));
        let error = FunctionManifest::parse(&text).expect_err(&text);
        prop_assert!(error.contains(&format!("function name '{name}' is invalid")), "{}", error);
        prop_assert!(validate_name(&name).is_err());
    }

    /// A version that is not semantic is refused with a message naming the field.
    #[test]
    fn invalid_versions_are_refused_naming_the_field(version in invalid_version()) {
        let text = format!("name = \"ok\"\nversion = {}\n", basic_string(&version));
        let error = FunctionManifest::parse(&text).expect_err(&text);
        let expected = format!("version '{version}' is not a semantic version");
        prop_assert!(error.contains(&expected), "{}", error);
    }

    /// Every folder name becomes a valid function name or nothing (then `load` asks for a
    /// `name`); a folder already named validly keeps its name.
    #[test]
    fn folder_names_become_valid_names(folder in prop_oneof![any::<String>(), ".{0,80}"]) {
        let name = name_from_folder(&folder);
        prop_assert!(name.is_empty() || validate_name(&name).is_ok(), "{:?} -> {:?}", folder, name);
    }

    #[test]
    fn valid_folder_names_are_kept(name in valid_name()) {
        prop_assert_eq!(name_from_folder(&name), name);
    }
}
