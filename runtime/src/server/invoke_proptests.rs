//! Property tests of how an invocation URL and request become the function's call: the
//! `name:entry` segment ([`split_entry`]), the custom path after `/invoke` ([`custom_path`]),
//! the query string ([`parse_query`]) and the keyword arguments ([`arguments`]).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

/// A moderate number of cases unless `PROPTEST_CASES` asks for another; no regression files
/// written into the checkout.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..default }
}

fn headers(content_type: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers
}

/// A query string as a browser or `requests` would send it.
fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// Query keys and values that need no encoding.
fn safe_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.~-]{1,12}"
}

/// Any key or value: spaces, `&`, `=`, `+`, `%`, non-ASCII.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![safe_text(), "[ &=+%?#/a-z]{0,8}", any::<String>()]
}

/// Pairs with unique keys (in order).
fn unique_pairs(
    key: impl Strategy<Value = String>,
    value: impl Strategy<Value = String>,
) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        let mut seen = std::collections::HashSet::new();
        pairs.into_iter().filter(|(key, _)| seen.insert(key.clone())).collect()
    })
}

/// Scalar JSON values a request body might hold.
fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..3).prop_map(Value::from),
    ]
}

/// Content types a client might send, well-formed or not.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("application/json".to_string()),
        Just("Application/JSON; charset=utf-8".to_string()),
        Just("application/vnd.api+json".to_string()),
        Just("application/x-www-form-urlencoded".to_string()),
        Just("text/plain".to_string()),
        Just("multipart/form-data; boundary=x".to_string()),
        Just(";".to_string()),
        "[ -~]{0,30}",
    ])
}

/// Request bodies: arbitrary bytes, JSON-ish text, forms.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "[ {}\\[\\]\":,a-z0-9\n\t=&%+]{0,40}".prop_map(String::into_bytes),
        Just(b"{}".to_vec()),
        Just(b"   ".to_vec()),
        Just(b"[1, 2]".to_vec()),
        Just(b"\"text\"".to_vec()),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// Any function segment splits at its first ':'; rejoining gives the segment back, and the
    /// name never holds a ':'.
    #[test]
    fn entry_splits_at_the_first_colon(segment in any_text()) {
        let (name, entry) = split_entry(&segment);
        prop_assert!(!name.contains(':'));
        match &entry {
            Some(entry) => {
                prop_assert!(!entry.is_empty());
                prop_assert_eq!(format!("{name}:{entry}"), segment.clone());
            }
            None => {
                let with_colon = format!("{name}:");
                prop_assert!(segment == name || segment == with_colon, "{:?}", segment);
            }
        }
    }

    /// `name:entry` gives both (the entry may hold more ':'); a bare name or `name:` gives no
    /// entry.
    #[test]
    fn name_and_entry_round_trip(name in "[^:]{0,20}", entry in ".{1,20}") {
        prop_assert_eq!(
            split_entry(&format!("{name}:{entry}")),
            (name.clone(), Some(entry.clone()))
        );
        prop_assert_eq!(split_entry(&name), (name.clone(), None));
        prop_assert_eq!(split_entry(&format!("{name}:")), (name.clone(), None));
    }

    /// Any custom path is accepted iff it has at most three non-empty levels, and becomes the
    /// same path with exactly one leading '/'.
    #[test]
    fn custom_paths_keep_their_levels(
        rest in prop_oneof![
            any::<String>(),
            prop::collection::vec("[a-z%.]{0,4}", 0..7).prop_map(|segments| segments.join("/")),
        ]
    ) {
        let levels = rest.split('/').filter(|s| !s.is_empty()).count();
        match custom_path(&rest) {
            Some(path) => {
                prop_assert!(levels <= MAX_CUSTOM_PATH_LEVELS, "{:?}", rest);
                prop_assert!(path.starts_with('/') && !path.starts_with("//"), "{:?}", path);
                prop_assert_eq!(path[1..].to_string(), rest.trim_start_matches('/'));
            }
            None => prop_assert!(levels > MAX_CUSTOM_PATH_LEVELS, "{:?}", rest),
        }
    }

    /// Any query string parses into pairs (no panic), and a query the client encoded decodes
    /// to exactly the pairs it encoded, in order, repeated names included.
    #[test]
    fn queries_decode_to_what_was_encoded(
        raw in prop_oneof![any::<String>(), "[a-z=&%+0-9A-F]{0,30}"],
        pairs in prop::collection::vec((any_text(), any_text()), 0..6),
    ) {
        let _ = parse_query(Some(&raw));
        prop_assert!(parse_query(None).is_empty());
        prop_assert_eq!(parse_query(Some(&encode(&pairs))), pairs);
    }

    /// Each query name becomes a string argument with its value; for a repeated name the
    /// first value wins; the arguments keep the query's order.
    #[test]
    fn query_names_become_arguments_first_value_winning(
        pairs in unique_pairs(safe_text(), any_text()),
        repeats in prop::collection::vec((any::<prop::sample::Index>(), any_text()), 0..4),
    ) {
        let mut query = pairs.clone();
        if !pairs.is_empty() {
            for (index, value) in repeats {
                let key = pairs[index.index(pairs.len())].0.clone();
                query.push((key, value));
            }
        }
        let parsed = parse_query(Some(&encode(&query)));
        let arguments = arguments(&parsed, &headers(None), b"").unwrap().to_map();
        let expected: Map<String, Value> =
            pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        prop_assert_eq!(arguments.len(), pairs.len());
        // Same entries and the same order.
        prop_assert_eq!(
            arguments.iter().collect::<Vec<_>>(),
            expected.iter().collect::<Vec<_>>()
        );
    }

    /// A JSON object body's fields become arguments, overriding query values of the same name;
    /// the other query names stay.
    #[test]
    fn json_object_fields_override_the_query(
        query in unique_pairs(prop_oneof![safe_text(), Just("a".to_string())], any_text()),
        fields in prop::collection::vec(
            (prop_oneof![safe_text(), Just("a".to_string())], json_scalar()),
            0..6,
        ),
        content_type in prop::sample::select(
            &[Some("application/json"), Some("application/problem+json"), None,
              Some("application/x-www-form-urlencoded")][..]
        ),
        padding in "[ \t\r\n]{0,3}",
    ) {
        let object: Map<String, Value> = fields.into_iter().collect();
        let body = format!("{padding}{}", Value::Object(object.clone()));
        let arguments = arguments(&query, &headers(content_type), body.as_bytes()).unwrap();
        let mut expected: Map<String, Value> =
            query.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        expected.extend(object);
        prop_assert_eq!(Value::Object(arguments.to_map()), Value::Object(expected));
    }

    /// A form body's fields become string arguments, overriding query values of the same name.
    #[test]
    fn form_fields_override_the_query(
        query in unique_pairs(prop_oneof![safe_text(), Just("a".to_string())], any_text()),
        form in unique_pairs(
            prop_oneof![safe_text(), Just("a".to_string()), any_text()],
            any_text(),
        ),
    ) {
        let form_type = headers(Some("application/x-www-form-urlencoded"));
        let arguments = arguments(&query, &form_type, encode(&form).as_bytes()).unwrap();
        let mut expected: Map<String, Value> =
            query.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        for (key, value) in form {
            expected.insert(key, Value::String(value));
        }
        prop_assert_eq!(Value::Object(arguments.to_map()), Value::Object(expected));
    }

    /// Any body with any content type gives arguments or a 400 naming the JSON problem, never a
    /// panic; the query's names are always among the arguments.
    #[test]
    fn any_body_gives_arguments_or_a_bad_request(
        query in unique_pairs(any_text(), any_text()),
        content_type in content_type(),
        body in body(),
    ) {
        match arguments(&query, &headers(content_type.as_deref()), &body) {
            Ok(arguments) => {
                let arguments = arguments.to_map();
                for (key, _) in &query {
                    prop_assert!(arguments.contains_key(key), "{:?} lost", key);
                }
            }
            Err(error) => {
                prop_assert_eq!(error.status(), StatusCode::BAD_REQUEST);
                prop_assert!(error.to_string().contains("not valid JSON"), "{}", error);
            }
        }
    }
}
