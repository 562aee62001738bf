//! Property tests of the query language against independent models: equality filters (by an
//! equality written here, numbers compared exactly), the negating and logical operators, the
//! BSON order being a total order that agrees with that equality and with exact number
//! comparison, `$set` followed by a read, sorts agreeing with `compare_values`, projections of
//! top-level fields. That nothing panics on malformed input is `tests/robustness.rs`'s job.

use std::cmp::Ordering;

use proptest::prelude::*;
use serde_json::{json, Map, Number, Value};

use super::{compare_values, Filter, Projection, Sort, Update};

/// A moderate number of cases unless `PROPTEST_CASES` asks for another; no regression files
/// written into the checkout.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..default }
}

// ---------------------------------------------------------------------------------------------
// Generators

/// Numbers around the places where integers and floats part ways.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-3i64..=3).prop_map(Value::from),
        2 => prop::sample::select(
            &[-3.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 1e300, -1e300][..]
        )
        .prop_map(Value::from),
        2 => prop::sample::select(
            vec![
                json!(9_007_199_254_740_992_i64),
                json!(9_007_199_254_740_993_i64),
                json!(9_007_199_254_740_992.0),
                json!(i64::MAX),
                json!(i64::MIN),
                json!(u64::MAX),
                json!(9_223_372_036_854_775_808.0),
                json!(18_446_744_073_709_551_616.0),
                json!(-9_223_372_036_854_775_808.0),
            ]
        ),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
    ]
}

/// Scalars: the BSON types a JSON document holds, ObjectIds (in either letter case) and dates
/// included.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        2 => any::<bool>().prop_map(Value::Bool),
        6 => number(),
        3 => prop::sample::select(&["", "a", "b", "A", "ab", "é", "1", "a\u{0}", "\u{1}"][..])
            .prop_map(Value::from),
        1 => any::<String>().prop_map(Value::String),
        2 => special(),
    ]
}

/// The extended-JSON scalars: ObjectIds (in either letter case) and dates.
fn special() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(
            &["5f0000000000000000000aa1", "5F0000000000000000000AA1", "000000000000000000000000",]
                [..]
        )
        .prop_map(|hex| json!({ "$oid": hex })),
        (-2i64..=2).prop_map(|ms| json!({ "$date": ms })),
    ]
}

/// Field names of generated documents (never `$`-prefixed: those would be operators).
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(&["f", "g", "a", "x", "0", "1"][..]).prop_map(str::to_string)
}

/// Any value: scalars, arrays and documents nested a few levels.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

pub(crate) fn document() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), value()), 0..5).prop_map(|fields| fields.into_iter().collect())
}

/// The same value written differently where that makes no difference to equality: integers as
/// floats and back, ObjectIds in the other letter case.
fn respelled(value: &Value) -> Value {
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if i.unsigned_abs() < 1 << 53 => json!(i as f64),
            (None, Some(f)) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                json!(f as i64)
            }
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(respelled).collect()),
        Value::Object(map) => match map.get("$oid").and_then(Value::as_str) {
            Some(hex) if map.len() == 1 => {
                let other = if hex.chars().any(|c| c.is_ascii_uppercase()) {
                    hex.to_ascii_lowercase()
                } else {
                    hex.to_ascii_uppercase()
                };
                json!({ "$oid": other })
            }
            // A date's milliseconds must stay an integer.
            _ if date(map).is_some() => value.clone(),
            _ => Value::Object(map.iter().map(|(k, v)| (k.clone(), respelled(v))).collect()),
        },
        _ => value.clone(),
    }
}

/// A document and a value, with the document's `f` often equal to the value or holding it.
fn document_and_value() -> impl Strategy<Value = (Map<String, Value>, Value)> {
    (document(), value(), value(), 0u8..6, any::<prop::sample::Index>(), any::<bool>()).prop_map(
        |(mut doc, v, other, mode, at, respell)| {
            let same = if respell { respelled(&v) } else { v.clone() };
            match mode {
                0 => {
                    doc.insert("f".into(), same);
                }
                1 => {
                    let mut items = match other {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    items.insert(at.index(items.len() + 1), same);
                    doc.insert("f".into(), Value::Array(items));
                }
                2 => {
                    doc.remove("f");
                }
                _ => {}
            }
            (doc, v)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Models, written from MongoDB's documented semantics, not from the implementation

/// A JSON number, exactly.
#[derive(Debug, Clone, Copy)]
enum Exact {
    Int(i128),
    Float(f64),
}

fn exact(n: &Number) -> Exact {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => Exact::Int(i.into()),
        (_, Some(u)) => Exact::Int(u.into()),
        _ => Exact::Float(n.as_f64().expect("JSON numbers are finite")),
    }
}

/// An integer against a float, exactly: by the float's floor, then its fraction.
fn int_vs_float(i: i128, f: f64) -> Ordering {
    const LIMIT: f64 = 1.7e38; // about i128::MAX
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f <= -LIMIT {
        return Ordering::Greater;
    }
    let floor = f.floor();
    match i.cmp(&(floor as i128)) {
        Ordering::Equal if f > floor => Ordering::Less,
        order => order,
    }
}

fn numeric_order(a: &Number, b: &Number) -> Ordering {
    match (exact(a), exact(b)) {
        (Exact::Int(x), Exact::Int(y)) => x.cmp(&y),
        (Exact::Float(x), Exact::Float(y)) => x.partial_cmp(&y).expect("finite"),
        (Exact::Int(x), Exact::Float(y)) => int_vs_float(x, y),
        (Exact::Float(x), Exact::Int(y)) => int_vs_float(y, x).reverse(),
    }
}

fn oid(map: &Map<String, Value>) -> Option<String> {
    match map.get("$oid") {
        Some(Value::String(hex))
            if map.len() == 1 && hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Some(hex.to_ascii_lowercase())
        }
        _ => None,
    }
}

fn date(map: &Map<String, Value>) -> Option<i64> {
    map.get("$date").filter(|_| map.len() == 1).and_then(Value::as_i64)
}

/// Query equality: numbers by value (1 = 1.0), ObjectIds by hex in any case, dates by time,
/// arrays element by element, documents field by field in order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numeric_order(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => match ((oid(x), date(x)), (oid(y), date(y))) {
            ((Some(p), _), (Some(q), _)) => p == q,
            ((_, Some(p)), (_, Some(q))) => p == q,
            ((None, None), (None, None)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|((kp, p), (kq, q))| kp == kq && same(p, q))
            }
            _ => false,
        },
        _ => a == b,
    }
}

/// What `{"f": v}` means: `f` equals `v`, or is an array with an element equal to `v`; a
/// missing `f` equals null.
fn equality_model(doc: &Map<String, Value>, v: &Value) -> bool {
    match doc.get("f") {
        None => v.is_null(),
        Some(field @ Value::Array(items)) => same(field, v) || items.iter().any(|i| same(i, v)),
        Some(field) => same(field, v),
    }
}

/// JSON text: equal text means identical values, field order and number spelling included
/// (1 is not 1.0). Only -0.0 is written as 0.0: the update code counts them as the same value,
/// as serde_json's `==` does, so `$set` of -0.0 over 0.0 changes nothing.
fn text(value: &Value) -> String {
    fn unsigned_zero(value: &Value) -> Value {
        match value {
            Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => json!(0.0),
            Value::Array(items) => Value::Array(items.iter().map(unsigned_zero).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), unsigned_zero(v))).collect())
            }
            _ => value.clone(),
        }
    }
    serde_json::to_string(&unsigned_zero(value)).expect("values serialise")
}

fn doc_text(doc: &Map<String, Value>) -> String {
    text(&Value::Object(doc.clone()))
}

fn parse(filter: Value) -> Filter {
    Filter::parse(&filter).unwrap_or_else(|e| panic!("{filter} does not parse: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Filter clauses for the logical operators

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(&["f", "g", "a", "f.g", "f.0", "a.x", "f.0.g"][..])
        .prop_map(str::to_string)
}

/// One field clause: a literal or one of the comparison, membership, existence and size
/// operators.
pub(crate) fn clause() -> impl Strategy<Value = Value> {
    let values = prop::collection::vec(value(), 0..3);
    let condition = prop_oneof![
        2 => value(),
        1 => (prop::sample::select(&["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"][..]), value())
            .prop_map(|(op, v)| json!({ op: v })),
        1 => (prop::sample::select(&["$in", "$nin", "$all"][..]), values)
            .prop_map(|(op, vs)| json!({ op: vs })),
        1 => any::<bool>().prop_map(|b| json!({ "$exists": b })),
        1 => (0u8..3).prop_map(|n| json!({ "$size": n })),
        1 => value().prop_map(|v| json!({ "$not": { "$eq": v } })),
    ];
    prop::collection::vec((path(), condition), 1..3)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// `{"f": v}` matches exactly when `f` equals `v` or is an array holding an element equal
    /// to `v` (numbers by value, missing as null); `$eq` and `$in: [v]` say the same.
    #[test]
    fn equality_matches_the_model((doc, v) in document_and_value()) {
        let expected = equality_model(&doc, &v);
        let literal = parse(json!({ "f": v.clone() }));
        prop_assert_eq!(literal.matches(&doc), expected, "{:?} vs {}", doc, v);
        prop_assert_eq!(parse(json!({ "f": { "$eq": v.clone() } })).matches(&doc), expected);
        prop_assert_eq!(parse(json!({ "f": { "$in": [v.clone()] } })).matches(&doc), expected);
    }

    /// `$ne`, `$nin: [v]` and `$not: {$eq: v}` are exactly the negation of `$eq` on any path,
    /// dotted paths through arrays included.
    #[test]
    fn negations_negate_equality((doc, v) in document_and_value(), path in path()) {
        let eq = parse(json!({ path.clone(): { "$eq": v.clone() } })).matches(&doc);
        let ne = parse(json!({ path.clone(): { "$ne": v.clone() } })).matches(&doc);
        let nin = parse(json!({ path.clone(): { "$nin": [v.clone()] } })).matches(&doc);
        let not = parse(json!({ path.clone(): { "$not": { "$eq": v.clone() } } })).matches(&doc);
        prop_assert_eq!(ne, !eq, "{} {:?} {}", path, doc, v);
        prop_assert_eq!(nin, !eq);
        prop_assert_eq!(not, !eq);
    }

    /// `$and` matches iff every clause does, `$or` iff one does, `$nor` iff none does; two
    /// clauses on different fields in one document are an implicit `$and`.
    #[test]
    fn logical_operators_combine_their_clauses(
        clauses in prop::collection::vec(clause(), 1..4),
        doc in document(),
    ) {
        let each: Vec<bool> = clauses.iter().map(|c| parse(c.clone()).matches(&doc)).collect();
        let all = each.iter().all(|m| *m);
        let any = each.iter().any(|m| *m);
        prop_assert_eq!(parse(json!({ "$and": clauses.clone() })).matches(&doc), all);
        prop_assert_eq!(parse(json!({ "$or": clauses.clone() })).matches(&doc), any);
        prop_assert_eq!(parse(json!({ "$nor": clauses.clone() })).matches(&doc), !any);
        // An implicit `$and` of the first clause's fields and a `$or` of the others.
        if clauses.len() > 1 {
            let mut combined = clauses[0].as_object().cloned().unwrap_or_default();
            combined.insert("$or".into(), json!(clauses[1..]));
            let expected = each[0] && each[1..].iter().any(|m| *m);
            prop_assert_eq!(parse(Value::Object(combined)).matches(&doc), expected);
        }
    }

    /// `compare_values` is a total order: reflexive, antisymmetric, transitive; it is equal
    /// exactly when query equality says so; sorting with it never goes backwards.
    #[test]
    fn compare_values_is_a_total_order(
        a in value(),
        b in value(),
        c in value(),
        mut many in prop::collection::vec(value(), 0..12),
    ) {
        for x in [&a, &b, &c] {
            prop_assert_eq!(compare_values(x, x), Ordering::Equal, "{}", x);
            prop_assert_eq!(compare_values(x, &respelled(x)), Ordering::Equal, "{}", x);
        }
        for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
            let order = compare_values(x, y);
            prop_assert_eq!(order, compare_values(y, x).reverse(), "{} vs {}", x, y);
            prop_assert_eq!(order == Ordering::Equal, same(x, y), "{} vs {}", x, y);
        }
        // Transitivity, over every arrangement of the three.
        let orders =
            [(&a, &b, &c), (&a, &c, &b), (&b, &a, &c), (&b, &c, &a), (&c, &a, &b), (&c, &b, &a)];
        for (x, y, z) in orders {
            let (xy, yz, xz) = (compare_values(x, y), compare_values(y, z), compare_values(x, z));
            if xy != Ordering::Greater && yz != Ordering::Greater {
                prop_assert_ne!(xz, Ordering::Greater, "{} <= {} <= {}", x, y, z);
                if xy == Ordering::Less || yz == Ordering::Less {
                    prop_assert_eq!(xz, Ordering::Less, "{} < {} < {}", x, y, z);
                }
            }
        }
        many.extend([a, b, c]);
        many.sort_by(compare_values);
        for (i, x) in many.iter().enumerate() {
            for y in &many[i + 1..] {
                prop_assert_ne!(compare_values(x, y), Ordering::Greater, "{} before {}", x, y);
            }
        }
    }

    /// Numbers compare by value, exactly, across integers and floats.
    #[test]
    fn numbers_compare_exactly(a in number(), b in number()) {
        let (Value::Number(x), Value::Number(y)) = (&a, &b) else { unreachable!() };
        prop_assert_eq!(compare_values(&a, &b), numeric_order(x, y), "{} vs {}", a, b);
    }

    /// `$set` on a top-level field: the field then reads back as the value (identical, field
    /// order kept), nothing else changes, `changed` says whether anything did, and a filter on
    /// the value finds the document.
    #[test]
    fn set_then_read_gives_the_value((doc, v) in document_and_value(), field in key()) {
        let update = Update::parse(&json!({ "$set": { field.clone(): v.clone() } })).unwrap();
        let mut updated = doc.clone();
        let changed = update.apply(&mut updated, None).unwrap();
        let mut expected = doc.clone();
        expected.insert(field.clone(), v.clone());
        prop_assert_eq!(doc_text(&updated), doc_text(&expected));
        prop_assert_eq!(changed, doc_text(&doc) != doc_text(&expected));
        prop_assert_eq!(updated.get(&field).map(text), Some(text(&v)));
        let found = parse(json!({ field: v })).matches(&updated);
        prop_assert!(found);
    }

    /// `$set` on `f.g`: creates `f` as a document when it is missing, sets `g` in a document,
    /// and is refused where `f` is a value or an array (no field `g` can be made there).
    #[test]
    fn set_on_a_nested_path(
        doc in document(),
        f in prop::option::of(prop_oneof![2 => value(), 1 => scalar(), 1 => special()]),
        v in value(),
    ) {
        let mut doc = doc;
        match f {
            Some(f) => doc.insert("f".into(), f),
            None => doc.remove("f"),
        };
        let update = Update::parse(&json!({ "$set": { "f.g": v.clone() } })).unwrap();
        let mut updated = doc.clone();
        let result = update.apply(&mut updated, None);
        let settable = match doc.get("f") {
            None => true,
            Some(Value::Object(map)) => oid(map).is_none() && date(map).is_none(),
            Some(_) => false,
        };
        if settable {
            prop_assert!(result.is_ok(), "{:?}", result);
            let mut expected = doc.clone();
            let f = expected.entry("f").or_insert_with(|| json!({}));
            f.as_object_mut().unwrap().insert("g".into(), v.clone());
            prop_assert_eq!(doc_text(&updated), doc_text(&expected));
        } else {
            prop_assert!(result.is_err(), "{:?} set f.g", doc);
            prop_assert_eq!(doc_text(&updated), doc_text(&doc), "a refused update changes nothing");
        }
    }

    /// `_id` may be set to the value it has but never changed.
    #[test]
    fn set_never_changes_an_id(id in scalar(), v in scalar()) {
        let mut doc: Map<String, Value> = [("_id".to_string(), id.clone())].into_iter().collect();
        let update = Update::parse(&json!({ "$set": { "_id": v.clone() } })).unwrap();
        let result = update.apply(&mut doc, None);
        prop_assert_eq!(result.is_ok(), text(&id) == text(&v), "{} -> {}", id, v);
        prop_assert_eq!(doc_text(&doc), text(&json!({ "_id": id })));
    }

    /// One ascending key on scalar (or missing, as null) fields orders documents as
    /// `compare_values` orders the fields; descending is the reverse; both spellings agree.
    #[test]
    fn sort_on_one_scalar_key_is_compare_values(
        a in prop::option::of(scalar()),
        b in prop::option::of(scalar()),
        other in document(),
    ) {
        let with_f = |f: &Option<Value>| {
            let mut doc = other.clone();
            doc.remove("f");
            if let Some(f) = f {
                doc.insert("f".into(), f.clone());
            }
            doc
        };
        let (x, y) = (with_f(&a), with_f(&b));
        let null = Value::Null;
        let expected = compare_values(a.as_ref().unwrap_or(&null), b.as_ref().unwrap_or(&null));
        prop_assert_eq!(Sort::parse(&json!({ "f": 1 })).unwrap().compare(&x, &y), expected);
        prop_assert_eq!(Sort::parse(&json!([["f", 1]])).unwrap().compare(&x, &y), expected);
        let descending = Sort::parse(&json!({ "f": -1 })).unwrap();
        prop_assert_eq!(descending.compare(&x, &y), expected.reverse());
    }

    /// An array sorts by its smallest element ascending and its largest descending; an empty
    /// array before null and missing fields.
    #[test]
    fn sort_on_arrays_uses_their_extremes(a in value(), b in value()) {
        // The value a field sorts by: None for an empty array (below everything).
        fn sort_key(value: &Value, descending: bool) -> Option<&Value> {
            match value {
                Value::Array(items) => items.iter().reduce(|best, item| {
                    let order = compare_values(item, best);
                    let wanted = if descending { Ordering::Greater } else { Ordering::Less };
                    if order == wanted {
                        item
                    } else {
                        best
                    }
                }),
                value => Some(value),
            }
        }
        let x: Map<String, Value> = [("f".to_string(), a.clone())].into_iter().collect();
        let y: Map<String, Value> = [("f".to_string(), b.clone())].into_iter().collect();
        for descending in [false, true] {
            let expected = match (sort_key(&a, descending), sort_key(&b, descending)) {
                (Some(p), Some(q)) => compare_values(p, q),
                (p, q) => p.is_some().cmp(&q.is_some()),
            };
            let expected = if descending { expected.reverse() } else { expected };
            let sort = Sort::parse(&json!({ "f": if descending { -1 } else { 1 } })).unwrap();
            prop_assert_eq!(sort.compare(&x, &y), expected, "{} vs {} ({})", a, b, descending);
        }
    }

    /// Projecting top-level fields: an inclusion keeps just those (and `_id`), an exclusion
    /// drops just those; values and field order are untouched.
    #[test]
    fn projections_of_top_level_fields(
        doc in prop::collection::vec(
            (
                prop::sample::select(&["_id", "a", "b", "c", "d"][..]).prop_map(str::to_string),
                value(),
            ),
            0..6,
        ).prop_map(|fields| fields.into_iter().collect::<Map<String, Value>>()),
        fields in prop::collection::btree_set(
            prop::sample::select(&["a", "b", "c", "x"][..]),
            1..4,
        ),
        include_id in any::<bool>(),
    ) {
        let spec = |flag: i32| {
            let mut spec: Map<String, Value> =
                fields.iter().map(|f| (f.to_string(), json!(flag))).collect();
            if !include_id {
                spec.insert("_id".into(), json!(0));
            }
            Value::Object(spec)
        };
        let kept = |keep: &dyn Fn(&str) -> bool| -> Map<String, Value> {
            doc.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let included = Projection::parse(&spec(1)).unwrap().apply(&doc);
        let expected = kept(&|k| fields.contains(k) || (k == "_id" && include_id));
        prop_assert_eq!(doc_text(&included), doc_text(&expected));
        let excluded = Projection::parse(&spec(0)).unwrap().apply(&doc);
        let expected = kept(&|k| !fields.contains(k) && (k != "_id" || include_id));
        prop_assert_eq!(doc_text(&excluded), doc_text(&expected));
    }
}
