//! Values as MongoDB sees them: the BSON type of a JSON value (with the extended-JSON forms
//! `{"$oid": ..}` and `{"$date": ..}` as the scalar types ObjectId and Date), the BSON comparison
//! order used by filters, `$min`/`$max` and sorting, and exact (order-aware) identity.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// The BSON type brackets this module knows, in BSON comparison order (lowest first). MinKey,
/// MaxKey, binary data, timestamps and regular expressions have no JSON form here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Null,
    Number,
    String,
    Object,
    Array,
    ObjectId,
    Bool,
    Date,
}

/// The hex string of an extended-JSON ObjectId `{"$oid": "<24 hex digits>"}`.
pub(crate) fn as_oid(map: &Map<String, Value>) -> Option<&str> {
    if map.len() != 1 {
        return None;
    }
    match map.get("$oid") {
        Some(Value::String(hex)) if is_oid_hex(hex) => Some(hex),
        _ => None,
    }
}

fn is_oid_hex(hex: &str) -> bool {
    hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The milliseconds since the epoch of an extended-JSON datetime `{"$date": <integer>}` (or the
/// canonical `{"$date": {"$numberLong": "<integer>"}}`).
pub(crate) fn as_date(map: &Map<String, Value>) -> Option<i64> {
    if map.len() != 1 {
        return None;
    }
    match map.get("$date")? {
        Value::Number(n) => n.as_i64(),
        Value::Object(inner) if inner.len() == 1 => match inner.get("$numberLong") {
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `map` is one of the extended-JSON scalars (ObjectId, Date) rather than a document.
pub(crate) fn is_special(map: &Map<String, Value>) -> bool {
    as_oid(map).is_some() || as_date(map).is_some()
}

/// The document inside `value`, unless it is not an object or is an extended-JSON scalar.
pub(crate) fn as_document(value: &Value) -> Option<&Map<String, Value>> {
    match value {
        Value::Object(map) if !is_special(map) => Some(map),
        _ => None,
    }
}

pub(crate) fn kind(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(map) if as_oid(map).is_some() => Kind::ObjectId,
        Value::Object(map) if as_date(map).is_some() => Kind::Date,
        Value::Object(_) => Kind::Object,
    }
}

/// The type's name as MongoDB's error messages spell it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match kind(value) {
        Kind::Null => "null",
        Kind::Number => match value {
            Value::Number(n) if n.is_f64() => "double",
            _ => "long",
        },
        Kind::String => "string",
        Kind::Object => "object",
        Kind::Array => "array",
        Kind::ObjectId => "objectId",
        Kind::Bool => "bool",
        Kind::Date => "date",
    }
}

/// BSON comparison order of two values (MinKey < null < numbers < string < object < array <
/// ObjectId < bool < Date ...): numbers compare numerically across integer and float, strings
/// bytewise, documents pair by pair in field order, arrays element by element.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    let (ka, kb) = (kind(a), kind(b));
    if ka != kb {
        return ka.cmp(&kb);
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => compare_arrays(x, y),
        (Value::Object(x), Value::Object(y)) => match ka {
            Kind::ObjectId => compare_oids(x, y),
            Kind::Date => as_date(x).cmp(&as_date(y)),
            _ => compare_documents(x, y),
        },
        _ => Ordering::Equal,
    }
}

/// Equality as queries use it: same type bracket and equal by [`compare_values`].
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

fn compare_oids(a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    let lower = |m| as_oid(m).unwrap_or("").bytes().map(|c| c.to_ascii_lowercase());
    lower(a).cmp(lower(b))
}

fn compare_arrays(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = compare_values(x, y);
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// MongoDB's document order: pair by pair, first the value's type, then the field name, then the
/// value; a document that runs out of fields first is the smaller.
fn compare_documents(a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
    let mut left = a.iter();
    let mut right = b.iter();
    loop {
        let (ka, va, kb, vb) = match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => (ka, va, kb, vb),
        };
        let order = kind(va)
            .cmp(&kind(vb))
            .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
            .then_with(|| compare_values(va, vb));
        if order != Ordering::Equal {
            return order;
        }
    }
}

/// A JSON number, exactly: an integer (i64 or u64 both fit i128) or a float.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

pub(crate) fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Num::Int(i128::from(u))
    } else {
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

pub(crate) fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => compare_floats(x, y),
        (Num::Int(x), Num::Float(y)) => compare_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => compare_int_float(y, x).reverse(),
    }
}

/// NaN sorts below every other number and equals itself, as in MongoDB.
fn compare_floats(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Compares an integer with a float without losing precision to rounding.
fn compare_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    let rounded = i as f64;
    match rounded.partial_cmp(&f) {
        // Rounding is monotonic, so only equality needs an exact second look.
        Some(Ordering::Equal) if f.abs() < 1e38 => i.cmp(&(f as i128)),
        Some(order) => order,
        None => Ordering::Equal,
    }
}

/// Whether two values are identical: same types, same numbers as written (1 is not 1.0) and
/// documents with the same fields in the same order. Tells whether an update changed anything.
pub(crate) fn identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => identical_documents(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q))
        }
        _ => a == b,
    }
}

pub(crate) fn identical_documents(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
}

/// Whether `value` nests objects and arrays deeper than `limit` levels.
pub(crate) fn deeper_than(value: &Value, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Object(map) => Box::new(map.values()),
        Value::Array(items) => Box::new(items.iter()),
        _ => return false,
    };
    let mut children = children.peekable();
    if children.peek().is_none() {
        return false;
    }
    limit == 0 || children.any(|child| deeper_than(child, limit - 1))
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_and_floats_compare_exactly() {
        let big = json!(9_007_199_254_740_993_i64); // 2^53 + 1, not representable as f64
        let float = json!(9_007_199_254_740_992.0);
        assert_eq!(compare_values(&big, &float), Ordering::Greater);
        assert_eq!(compare_values(&json!(1), &json!(1.0)), Ordering::Equal);
        assert_eq!(compare_values(&json!(u64::MAX), &json!(-1)), Ordering::Greater);
    }

    #[test]
    fn depth_is_measured() {
        assert!(!deeper_than(&json!({"a": {"b": 1}}), 2));
        assert!(deeper_than(&json!({"a": {"b": [1]}}), 2));
        assert!(!deeper_than(&json!({"a": {"b": []}}), 2));
    }
}
