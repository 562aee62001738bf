//! Filters pushed down to PostgreSQL: a filter becomes a SQL condition that every document the
//! filter matches satisfies (a superset; the shared engine re-checks each row, so answers stay
//! exactly those of the embedded store), over the `body` column: a `jsonb` copy of the document
//! whose strings are [`encoded`] so that PostgreSQL accepts them and orders them as MongoDB does.
//!
//! Each predicate on a dotted path `a.b.c` becomes `(body -> 'a') @? 'lax $."b"."c"[*] ? (@ ==
//! v)'`: SQL/JSON's lax mode enters arrays along the path and at its end, as MongoDB's query
//! language does, so the condition holds whenever the engine's match does. Only what keeps that
//! promise is translated: equality, ranges and `$in` on strings, booleans and numbers of
//! magnitude under 2^52 (below that every stored number's decimal form sits on the same side of
//! the value as the number itself), `$exists: true`, `$all` of such values, `$and` and `$or`;
//! paths with array indexes (`a.0.b`) and everything else stay with the engine. `_id` equality
//! and `$in` use the primary key. The `(body -> 'a')` form is what a declared index
//! (`[[documents.index]]`, [`index_statement`]) covers.

use serde_json::{Map, Number, Value};

use super::super::engine::id_key;
use super::super::query::{array_index, as_oid, CmpOp, Filter, Node, Pred};
use super::super::Document;

/// A parameter of a pushed-down condition, numbered after the statement's own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// A jsonpath, as text (the statement casts it).
    Text(String),
    /// Row keys for `id = ANY(..)`.
    Keys(Vec<String>),
}

/// A SQL condition and its parameters, `$first`, `$first + 1` ... in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub sql: String,
    pub params: Vec<Param>,
}

/// The condition for `filter`, with parameters numbered from `first`; none when nothing of the
/// filter can be pushed down (every row of the collection is a candidate).
pub(crate) fn condition(filter: &Filter, first: usize) -> Option<Condition> {
    let mut params = Vec::new();
    let sql = node(filter.root(), first, &mut params)?;
    Some(Condition { sql, params })
}

fn node(node: &Node, first: usize, params: &mut Vec<Param>) -> Option<String> {
    match node {
        Node::And(children) => {
            let parts: Vec<String> =
                children.iter().filter_map(|child| self::node(child, first, params)).collect();
            join(parts, " AND ")
        }
        Node::Or(children) => {
            let mark = params.len();
            let mut parts = Vec::with_capacity(children.len());
            for child in children {
                match self::node(child, first, params) {
                    Some(part) => parts.push(part),
                    None => {
                        // One branch that may match anything: the whole `$or` may.
                        params.truncate(mark);
                        return None;
                    }
                }
            }
            join(parts, " OR ")
        }
        Node::Nor(_) => None,
        Node::Field(path, pred) => field(path.parts(), pred, first, params),
    }
}

fn join(parts: Vec<String>, with: &str) -> Option<String> {
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(format!("({})", parts.join(with))),
    }
}

fn field(parts: &[String], pred: &Pred, first: usize, params: &mut Vec<Param>) -> Option<String> {
    if parts.iter().any(|part| array_index(part).is_some()) {
        return None;
    }
    if let [only] = parts {
        if only == "_id" {
            if let Some(keys) = id_keys(pred) {
                params.push(Param::Keys(keys));
                return Some(format!("id = ANY(${})", first + params.len() - 1));
            }
        }
    }
    let (head, rest) = parts.split_first()?;
    let mut path = String::from("lax $");
    for part in rest {
        path.push('.');
        path.push_str(&quoted(&encode_str(part)));
    }
    let test = match pred {
        Pred::Exists(true) => None,
        Pred::Eq(value) => Some(format!("@ == {}", literal(value)?)),
        Pred::Cmp(op, value) => {
            let op = match op {
                CmpOp::Gt => ">",
                CmpOp::Gte => ">=",
                CmpOp::Lt => "<",
                CmpOp::Lte => "<=",
            };
            Some(format!("@ {op} {}", literal(value)?))
        }
        Pred::In(values) if !values.is_empty() => {
            let tests: Option<Vec<String>> =
                values.iter().map(|v| literal(v).map(|l| format!("@ == {l}"))).collect();
            Some(tests?.join(" || "))
        }
        Pred::All(values) if !values.is_empty() => {
            // Each value somewhere: one condition per value.
            let mark = params.len();
            let mut each = Vec::with_capacity(values.len());
            for value in values {
                match field(parts, &Pred::Eq(value.clone()), first, params) {
                    Some(part) => each.push(part),
                    None => {
                        params.truncate(mark);
                        return None;
                    }
                }
            }
            return join(each, " AND ");
        }
        _ => return None,
    };
    if let Some(test) = test {
        path.push_str(&format!("[*] ? ({test})"));
    }
    params.push(Param::Text(path));
    Some(format!(
        "(body -> {}) @? (${}::text)::jsonpath",
        sql_literal(&encode_str(head)),
        first + params.len() - 1
    ))
}

/// The primary keys an `_id` predicate can only match, when it is an equality or `$in` on ids
/// whose key is canonical (strings, numbers, ObjectIds).
fn id_keys(pred: &Pred) -> Option<Vec<String>> {
    let key = |value: &Value| match value {
        Value::String(_) | Value::Number(_) => Some(id_key(value)),
        Value::Object(map) if as_oid(map).is_some() => Some(id_key(value)),
        _ => None,
    };
    match pred {
        Pred::Eq(value) => Some(vec![key(value)?]),
        Pred::In(values) if !values.is_empty() => values.iter().map(key).collect(),
        _ => None,
    }
}

/// Numbers whose decimal form compares like the number itself (see the module's notes).
const EXACT_BELOW: f64 = 4_503_599_627_370_496.0; // 2^52

/// A jsonpath literal for `value`, when comparing with it in SQL/JSON agrees with the engine.
fn literal(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(quoted(&encode_str(s))),
        Value::Number(n) => number(n),
        _ => None,
    }
}

fn number(n: &Number) -> Option<String> {
    let f = n.as_f64()?;
    if !f.is_finite() || f.abs() >= EXACT_BELOW {
        return None;
    }
    if let Some(i) = n.as_i64() {
        return Some(i.to_string());
    }
    // The shortest form that reads back as `f` (jsonpath takes exponents too).
    Some(format!("{f:?}"))
}

/// A double-quoted jsonpath (and JSON) string.
fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A SQL string literal, correct whatever `standard_conforming_strings` says.
pub(crate) fn sql_literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// PostgreSQL's `jsonb` refuses U+0000 in strings. Strings (keys and values) are stored with
/// U+0000 as U+0001 U+0001 and U+0001 as U+0001 U+0002: a prefix-free code that keeps code point
/// order, so comparisons on the encoded strings agree with comparisons on the originals.
pub(crate) fn encode_str(s: &str) -> String {
    if !s.contains(['\u{0}', '\u{1}']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\u{0}' => out.push_str("\u{1}\u{1}"),
            '\u{1}' => out.push_str("\u{1}\u{2}"),
            c => out.push(c),
        }
    }
    out
}

/// The `body` column's copy of `document`.
pub(crate) fn encoded(document: &Document) -> Value {
    Value::Object(encoded_map(document))
}

fn encoded_map(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter().map(|(key, value)| (encode_str(key), encoded_value(value))).collect()
}

fn encoded_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(encode_str(s)),
        Value::Array(items) => Value::Array(items.iter().map(encoded_value).collect()),
        Value::Object(map) => Value::Object(encoded_map(map)),
        other => other.clone(),
    }
}

/// The index a `[[documents.index]]` path asks for: a GIN index over the path's first field in
/// the collection's rows (every database of the space), which serves every pushed-down test on
/// paths under that field. Its name is derived from what it covers, so declaring it again (or on
/// another node) finds it in place.
pub(crate) fn index_statement(
    space: &str,
    collection: &str,
    path: &str,
) -> Option<(String, String)> {
    use sha2::{Digest, Sha256};
    let head = path.split('.').next().filter(|head| !head.is_empty())?;
    let head = encode_str(head);
    let mut hash = Sha256::new();
    for part in [space, collection, &head] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let name = format!("wasmfn_docix_{}", &hex::encode(hash.finalize())[..24]);
    let statement = format!(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON wasmfn_documents \
         USING gin ((body -> {}) jsonb_path_ops) WHERE space = {} AND collection = {}",
        sql_literal(&head),
        sql_literal(space),
        sql_literal(collection)
    );
    Some((name, statement))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pushed(filter: Value) -> Option<Condition> {
        condition(&Filter::parse(&filter).unwrap(), 4)
    }

    fn text(path: &str) -> Param {
        Param::Text(path.into())
    }

    #[test]
    fn equality_range_and_in_become_jsonpath_tests() {
        let c = pushed(json!({"status": "open", "n": {"$gte": 2, "$lt": 9.5}})).unwrap();
        assert_eq!(
            c.sql,
            "((body -> E'status') @? ($4::text)::jsonpath AND (body -> E'n') @? ($5::text)::jsonpath \
             AND (body -> E'n') @? ($6::text)::jsonpath)"
        );
        assert_eq!(
            c.params,
            [
                text("lax $[*] ? (@ == \"open\")"),
                text("lax $[*] ? (@ >= 2)"),
                text("lax $[*] ? (@ < 9.5)")
            ]
        );
        let c = pushed(json!({"device.tags": {"$in": ["a", true]}})).unwrap();
        assert_eq!(c.params, [text("lax $.\"tags\"[*] ? (@ == \"a\" || @ == true)")]);
        let c = pushed(json!({"a.b": {"$exists": true}})).unwrap();
        assert_eq!(c.params, [text("lax $.\"b\"")]);
    }

    #[test]
    fn ids_use_the_primary_key() {
        let c = pushed(json!({"_id": {"$in": [1.0, "x", {"$oid": "65A1B2C3D4E5F60718293A4B"}]}}))
            .unwrap();
        assert_eq!(c.sql, "id = ANY($4)");
        assert_eq!(
            c.params,
            [Param::Keys(vec![
                "1".into(),
                "\"x\"".into(),
                r#"{"$oid":"65a1b2c3d4e5f60718293a4b"}"#.into()
            ])]
        );
    }

    #[test]
    fn what_cannot_be_a_superset_stays_with_the_engine() {
        for filter in [
            json!({}),
            json!({"a": null}),
            json!({"a": {"x": 1}}),
            json!({"a": [1, 2]}),
            json!({"a": {"$ne": 1}}),
            json!({"a": {"$exists": false}}),
            json!({"a.0.b": 1}),
            json!({"a": 9_007_199_254_740_993_u64}),
            json!({"a": {"$gt": {"$date": 5}}}),
            json!({"$nor": [{"a": 1}]}),
            json!({"$or": [{"a": 1}, {"b": null}]}),
            json!({"a": {"$in": []}}),
            json!({"a": {"$in": [1, null]}}),
        ] {
            assert_eq!(pushed(filter.clone()), None, "{filter}");
        }
        // A part that cannot be pushed down leaves the rest.
        let c = pushed(json!({"a": 1, "b": {"$ne": 2}})).unwrap();
        assert_eq!(c.params, [text("lax $[*] ? (@ == 1)")]);
        let c = pushed(json!({"$or": [{"a": 1}, {"b": 2}]})).unwrap();
        assert_eq!(c.params.len(), 2);
        assert!(c.sql.contains(" OR "), "{}", c.sql);
    }

    #[test]
    fn strings_are_encoded_keeping_their_order() {
        let mut strings =
            ["", "\u{0}", "\u{0}\u{0}", "\u{0}z", "\u{1}", "\u{1}a", "\u{2}", "a", "a\u{0}", "é"];
        strings.sort();
        let mut coded: Vec<String> = strings.iter().map(|s| encode_str(s)).collect();
        assert!(coded.iter().all(|s| !s.contains('\u{0}')));
        let before = coded.clone();
        coded.sort();
        assert_eq!(coded, before, "the encoding keeps code point order");
        coded.dedup();
        assert_eq!(coded.len(), strings.len(), "and tells strings apart");
        let doc =
            json!({"k\u{0}": ["v\u{0}", {"x": "\u{1}"}], "n": 1}).as_object().unwrap().clone();
        assert_eq!(
            encoded(&doc),
            json!({"k\u{1}\u{1}": ["v\u{1}\u{1}", {"x": "\u{1}\u{2}"}], "n": 1})
        );
    }

    #[test]
    fn numbers_read_back_as_themselves() {
        assert_eq!(number(&Number::from_f64(1e-7).unwrap()).unwrap(), "1e-7");
        assert_eq!(number(&Number::from_f64(2.5).unwrap()).unwrap(), "2.5");
        assert_eq!(number(&Number::from(-3)).unwrap(), "-3");
        assert_eq!(number(&Number::from_f64(1e20).unwrap()), None);
    }

    #[test]
    fn index_statements_quote_names() {
        let (name, sql) = index_statement("sp'ace", "logs", "device.id").unwrap();
        assert!(sql.contains(&name), "{sql}");
        assert!(sql.contains("(body -> E'device')"), "{sql}");
        assert!(sql.contains("space = E'sp''ace'"), "{sql}");
        assert_eq!(sql, index_statement("sp'ace", "logs", "device.name").unwrap().1);
        assert_ne!(sql, index_statement("sp'ace", "logs", "other").unwrap().1);
        assert_eq!(index_statement("s", "c", ""), None);
    }
}
