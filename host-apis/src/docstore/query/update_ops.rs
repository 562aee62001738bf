//! The update operations on one document: `$set` and friends on dotted paths (creating objects
//! on the way), arithmetic that keeps integers integral, and the array operators.

use std::cmp::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Number, Value};

use super::meter::Meter;
use super::path::{array_index, crosses_array, get, get_mut, Path};
use super::update::{Op, PullCond, Push, PushSort};
use super::value::{compare_values, is_special, num, type_name, values_equal, Num};
use super::QueryError;

/// MongoDB refuses to pad an array with more nulls than this.
const MAX_PADDING: usize = 1_500_000;

/// Milliseconds since the epoch, for `$currentDate`.
pub(crate) fn now_millis() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Applies one operation at `path` (positional `$` already resolved).
pub(crate) fn apply_op(
    doc: &mut Map<String, Value>,
    path: &Path,
    op: &Op,
    now: i64,
    meter: &Meter,
) -> Result<(), QueryError> {
    let parts = path.parts();
    // Past the meter's deadline every comparison answers "no": the loops below end quickly and
    // the caller discards the result.
    let one_of = |item: &Value, values: &[Value]| {
        values.iter().take_while(|_| meter.tick()).any(|v| values_equal(item, v))
    };
    match op {
        Op::Set(value) => set_path(doc, parts, value.clone()),
        Op::Unset => {
            take(doc, parts);
            Ok(())
        }
        Op::Inc(n) => arithmetic(doc, path, "$inc", n, Arith::Add),
        Op::Mul(n) => arithmetic(doc, path, "$mul", n, Arith::Mul),
        Op::Min(value) => keep_extreme(doc, parts, value, Ordering::Less),
        Op::Max(value) => keep_extreme(doc, parts, value, Ordering::Greater),
        Op::Rename(to) => rename(doc, path, to),
        Op::Push(push) => push_values(doc, path, push),
        Op::AddToSet(values) => add_to_set(doc, path, values, meter),
        Op::Pull(cond) => pull(doc, path, |item| cond.removes(item, meter)),
        Op::PullAll(values) => pull(doc, path, |item| one_of(item, values)),
        Op::Pop { first } => pop(doc, path, *first),
        Op::CurrentDate => set_path(doc, parts, json!({ "$date": now })),
    }
}

impl PullCond {
    fn removes(&self, item: &Value, meter: &Meter) -> bool {
        match self {
            PullCond::Equal(value) => meter.tick() && values_equal(item, value),
            PullCond::Matching(cond) => cond.matches(item, meter),
        }
    }
}

/// Sets the value at `path`, creating objects for missing fields and padding arrays with nulls
/// up to a numeric component.
pub(crate) fn set_path(
    doc: &mut Map<String, Value>,
    path: &[String],
    value: Value,
) -> Result<(), QueryError> {
    let Some((first, rest)) = path.split_first() else { return Ok(()) };
    if rest.is_empty() {
        doc.insert(first.clone(), value);
        return Ok(());
    }
    let child = doc.entry(first.clone()).or_insert_with(|| Value::Object(Map::new()));
    set_in(child, first, rest, value)
}

fn set_in(
    current: &mut Value,
    name: &str,
    path: &[String],
    value: Value,
) -> Result<(), QueryError> {
    let Some((key, rest)) = path.split_first() else {
        *current = value;
        return Ok(());
    };
    let settable = match &*current {
        Value::Object(map) => !is_special(map),
        Value::Array(_) => array_index(key).is_some(),
        _ => false,
    };
    if !settable {
        return Err(cannot_create(key, name, current));
    }
    let child = match current {
        Value::Object(map) => {
            if rest.is_empty() {
                map.insert(key.clone(), value);
                return Ok(());
            }
            map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()))
        }
        Value::Array(items) => {
            let index = array_index(key).unwrap_or(usize::MAX);
            let padded = index >= items.len();
            if padded {
                if index - items.len() > MAX_PADDING {
                    return Err(QueryError::new(format!(
                        "can't backfill more than {MAX_PADDING} elements"
                    )));
                }
                items.resize(index + 1, Value::Null);
            }
            if rest.is_empty() {
                items[index] = value;
                return Ok(());
            }
            if padded {
                items[index] = Value::Object(Map::new());
            }
            &mut items[index]
        }
        _ => return Err(cannot_create(key, name, current)),
    };
    set_in(child, key, rest, value)
}

fn cannot_create(key: &str, name: &str, current: &Value) -> QueryError {
    let mut shown = current.to_string();
    if shown.len() > 100 {
        let cut = (0..=100).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    QueryError::new(format!("Cannot create field '{key}' in element {{{name}: {shown}}}"))
}

/// Removes the value at `path` (keeping the order of the other fields); an array element is
/// set to null instead, as `$unset` does.
fn take(doc: &mut Map<String, Value>, path: &[String]) -> Option<Value> {
    let (last, parent) = path.split_last()?;
    if parent.is_empty() {
        return take_field(doc, last);
    }
    match get_mut(doc, parent)? {
        Value::Object(map) if !is_special(map) => take_field(map, last),
        Value::Array(items) => items.get_mut(array_index(last)?).map(Value::take),
        _ => None,
    }
}

fn take_field(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let value = map.get_mut(key).map(Value::take)?;
    map.retain(|k, _| k != key);
    Some(value)
}

#[derive(Debug, Clone, Copy)]
enum Arith {
    Add,
    Mul,
}

fn arithmetic(
    doc: &mut Map<String, Value>,
    path: &Path,
    operator: &str,
    n: &Number,
    arith: Arith,
) -> Result<(), QueryError> {
    let new = match (get(doc, path.parts()), arith) {
        (None, Arith::Add) => n.clone(),
        (None, Arith::Mul) => zero_like(n),
        (Some(Value::Number(current)), _) => combine(current, n, arith).ok_or_else(|| {
            QueryError::new(format!(
                "Failed to apply {operator} operations to current value ({current}): \
                 the result does not fit a 64-bit integer or is not finite"
            ))
        })?,
        (Some(other), _) => {
            return Err(QueryError::new(format!(
                "Cannot apply {operator} to a value of non-numeric type. {} has the field '{}' \
                 of non-numeric type {}",
                id_text(doc),
                path.parts().last().map_or("", String::as_str),
                type_name(other)
            )))
        }
    };
    set_path(doc, path.parts(), Value::Number(new))
}

/// `$mul` on a missing field sets zero of the multiplier's type.
fn zero_like(n: &Number) -> Number {
    match num(n) {
        Num::Int(_) => Number::from(0),
        Num::Float(_) => Number::from_f64(0.0).unwrap_or_else(|| Number::from(0)),
    }
}

/// Integers stay integers (failing on overflow); anything with a float is a float.
fn combine(a: &Number, b: &Number, arith: Arith) -> Option<Number> {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => {
            let result = match arith {
                Arith::Add => x.checked_add(y)?,
                Arith::Mul => x.checked_mul(y)?,
            };
            i64::try_from(result).map(Number::from).ok()
        }
        (x, y) => {
            let (x, y) = (float(x), float(y));
            Number::from_f64(match arith {
                Arith::Add => x + y,
                Arith::Mul => x * y,
            })
        }
    }
}

fn float(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    }
}

fn id_text(doc: &Map<String, Value>) -> String {
    match doc.get("_id") {
        Some(id) => format!("{{_id: {id}}}"),
        None => "{}".to_string(),
    }
}

/// `$min`/`$max`: sets the field when missing or when `value` is beyond it in `direction`.
fn keep_extreme(
    doc: &mut Map<String, Value>,
    path: &[String],
    value: &Value,
    direction: Ordering,
) -> Result<(), QueryError> {
    match get(doc, path) {
        Some(current) if compare_values(value, current) != direction => Ok(()),
        _ => set_path(doc, path, value.clone()),
    }
}

fn rename(doc: &mut Map<String, Value>, from: &Path, to: &Path) -> Result<(), QueryError> {
    if crosses_array(doc, from.parts()) {
        return Err(QueryError::new(format!(
            "The source field cannot be an array element, '{from}' in doc with {}",
            id_text(doc)
        )));
    }
    if crosses_array(doc, to.parts()) {
        return Err(QueryError::new(format!(
            "The destination field cannot be an array element, '{to}' in doc with {}",
            id_text(doc)
        )));
    }
    let Some(value) = take(doc, from.parts()) else { return Ok(()) };
    // Like MongoDB: unset both names, then set the new one.
    take(doc, to.parts());
    set_path(doc, to.parts(), value)
}

fn not_an_array(operator: &str, path: &Path, value: &Value) -> QueryError {
    QueryError::new(format!(
        "The field '{path}' must be an array but is of type {} ({operator})",
        type_name(value)
    ))
}

fn push_values(doc: &mut Map<String, Value>, path: &Path, push: &Push) -> Result<(), QueryError> {
    match get_mut(doc, path.parts()) {
        Some(Value::Array(items)) => {
            push_into(items, push);
            Ok(())
        }
        Some(other) => Err(not_an_array("$push", path, other)),
        None => {
            let mut items = Vec::new();
            push_into(&mut items, push);
            set_path(doc, path.parts(), Value::Array(items))
        }
    }
}

/// `$push` with `$each`: insert at `$position`, then `$sort`, then `$slice`.
fn push_into(items: &mut Vec<Value>, push: &Push) {
    let len = items.len();
    let at = match push.position {
        None => len,
        Some(p) if p >= 0 => usize::try_from(p).unwrap_or(usize::MAX).min(len),
        Some(p) => len.saturating_sub(usize::try_from(p.unsigned_abs()).unwrap_or(usize::MAX)),
    };
    items.splice(at..at, push.each.iter().cloned());
    match &push.sort {
        Some(PushSort::Values { descending }) => items.sort_by(|a, b| {
            let order = compare_values(a, b);
            if *descending {
                order.reverse()
            } else {
                order
            }
        }),
        Some(PushSort::Fields(sort)) => {
            // Elements that are not documents sort as empty documents.
            let empty = Map::new();
            items.sort_by(|a, b| {
                sort.compare(as_map(a).unwrap_or(&empty), as_map(b).unwrap_or(&empty))
            });
        }
        None => {}
    }
    match push.slice {
        Some(n) if n >= 0 => items.truncate(usize::try_from(n).unwrap_or(usize::MAX)),
        Some(n) => {
            let keep = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
            let drop = items.len().saturating_sub(keep);
            items.drain(..drop);
        }
        None => {}
    }
}

fn as_map(value: &Value) -> Option<&Map<String, Value>> {
    value.as_object()
}

fn add_to_set(
    doc: &mut Map<String, Value>,
    path: &Path,
    values: &[Value],
    meter: &Meter,
) -> Result<(), QueryError> {
    let add = |items: &mut Vec<Value>| {
        for value in values {
            let present = items.iter().take_while(|_| meter.tick()).any(|i| values_equal(i, value));
            if !present && meter.check().is_ok() {
                items.push(value.clone());
            }
        }
    };
    match get_mut(doc, path.parts()) {
        Some(Value::Array(items)) => {
            add(items);
            Ok(())
        }
        Some(other) => Err(QueryError::new(format!(
            "Cannot apply $addToSet to non-array field. Field named '{}' has non-array type {}",
            path.parts().last().map_or("", String::as_str),
            type_name(other)
        ))),
        None => {
            let mut items = Vec::new();
            add(&mut items);
            set_path(doc, path.parts(), Value::Array(items))
        }
    }
}

fn pull(
    doc: &mut Map<String, Value>,
    path: &Path,
    removes: impl Fn(&Value) -> bool,
) -> Result<(), QueryError> {
    match get_mut(doc, path.parts()) {
        Some(Value::Array(items)) => {
            items.retain(|item| !removes(item));
            Ok(())
        }
        Some(other) => Err(QueryError::new(format!(
            "Cannot apply $pull to a non-array value (the field '{path}' is of type {})",
            type_name(other)
        ))),
        None => Ok(()),
    }
}

fn pop(doc: &mut Map<String, Value>, path: &Path, first: bool) -> Result<(), QueryError> {
    match get_mut(doc, path.parts()) {
        Some(Value::Array(items)) => {
            if first && !items.is_empty() {
                items.remove(0);
            } else {
                items.pop();
            }
            Ok(())
        }
        Some(other) => Err(QueryError::new(format!(
            "Path '{path}' contains an element of non-array type '{}'",
            type_name(other)
        ))),
        None => Ok(()),
    }
}
