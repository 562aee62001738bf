//! Update documents (`{"$set": {...}, "$inc": {...}}`): parsing and checking them once into a
//! list of field operations, and the [`Update`] API; the operations themselves are in
//! `update_ops`.

use serde_json::{Map, Number, Value};

use super::filter::{operators, parse_elem_match, ElemCond};
use super::meter::Meter;
use super::path::Path;
use super::sort::Sort;
use super::update_ops::{apply_op, now_millis};
use super::value::{as_document, deeper_than, identical, identical_documents, type_name};
use super::QueryError;

/// The deepest a document may nest after an update.
const MAX_DOCUMENT_DEPTH: usize = 200;

/// A parsed update: parsed once, applied to every matched document.
#[derive(Debug, Clone)]
pub struct Update {
    ops: Vec<FieldOp>,
    on_insert: Vec<FieldOp>,
}

/// One operation on one field.
#[derive(Debug, Clone)]
pub(crate) struct FieldOp {
    pub path: Path,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(Value),
    Unset,
    Inc(Number),
    Mul(Number),
    Min(Value),
    Max(Value),
    Rename(Path),
    Push(Push),
    AddToSet(Vec<Value>),
    Pull(PullCond),
    PullAll(Vec<Value>),
    Pop { first: bool },
    CurrentDate,
}

/// `$push` with its modifiers.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    pub each: Vec<Value>,
    pub position: Option<i64>,
    pub sort: Option<PushSort>,
    pub slice: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) enum PushSort {
    /// Sort the elements themselves; true for descending.
    Values { descending: bool },
    /// Sort element documents by fields.
    Fields(Sort),
}

/// What `$pull` removes: elements equal to a value, or elements a condition matches.
#[derive(Debug, Clone)]
pub(crate) enum PullCond {
    Equal(Value),
    Matching(ElemCond),
}

impl Update {
    /// Parses an update document: a non-empty object of `$` operators.
    pub fn parse(update: &Value) -> Result<Update, QueryError> {
        let doc = match update {
            Value::Object(doc) => doc,
            Value::Array(_) => {
                return Err(QueryError::new("pipeline-style updates are not supported"))
            }
            _ => return Err(QueryError::new("update must be an object")),
        };
        if doc.is_empty() {
            return Err(QueryError::new("update cannot be empty"));
        }
        if doc.keys().any(|k| !k.starts_with('$')) {
            return Err(QueryError::new("update only works with $ operators"));
        }
        let mut parsed = Update { ops: Vec::new(), on_insert: Vec::new() };
        for (operator, fields) in doc {
            parsed.parse_operator(operator, fields)?;
        }
        check_conflicts(parsed.ops.iter().chain(&parsed.on_insert))?;
        Ok(parsed)
    }

    fn parse_operator(&mut self, operator: &str, fields: &Value) -> Result<(), QueryError> {
        let Value::Object(fields) = fields else {
            return Err(QueryError::new(format!(
                "Modifiers operate on fields but we found type {} instead. For example: \
                 {{$mod: {{<field>: ...}}}} not {{{operator}: {fields}}}",
                type_name(fields)
            )));
        };
        for (field, arg) in fields {
            let path = parse_update_path(field)?;
            let op = parse_op(operator, &path, arg)?;
            let target =
                if operator == "$setOnInsert" { &mut self.on_insert } else { &mut self.ops };
            target.push(FieldOp { path, op });
        }
        Ok(())
    }

    /// Applies the update to `doc` in place (all or nothing); `position` is the array index from
    /// [`Filter::match_position`](super::Filter::match_position), needed by `a.$.b` paths.
    /// Returns whether the document changed.
    pub fn apply(
        &self,
        doc: &mut Map<String, Value>,
        position: Option<usize>,
    ) -> Result<bool, QueryError> {
        self.run(doc, position, false, &Meter::unbounded())
    }

    /// [`Update::apply`] with the comparisons of `$addToSet`, `$pull` and `$pullAll` counted on
    /// `meter`: once it has run out the document is left as it was, and the caller must check
    /// the meter before trusting the answer.
    pub fn apply_within(
        &self,
        doc: &mut Map<String, Value>,
        position: Option<usize>,
        meter: &Meter,
    ) -> Result<bool, QueryError> {
        self.run(doc, position, false, meter)
    }

    /// Applies the update to a document an upsert is about to insert, `$setOnInsert` included.
    pub fn apply_insert(&self, doc: &mut Map<String, Value>) -> Result<bool, QueryError> {
        self.run(doc, None, true, &Meter::unbounded())
    }

    /// [`Update::apply_insert`] counted on `meter`, as [`Update::apply_within`].
    pub fn apply_insert_within(
        &self,
        doc: &mut Map<String, Value>,
        meter: &Meter,
    ) -> Result<bool, QueryError> {
        self.run(doc, None, true, meter)
    }

    fn run(
        &self,
        doc: &mut Map<String, Value>,
        position: Option<usize>,
        insert: bool,
        meter: &Meter,
    ) -> Result<bool, QueryError> {
        let mut work = doc.clone();
        let now = now_millis();
        let extra = if insert { self.on_insert.as_slice() } else { &[] };
        for field_op in self.ops.iter().chain(extra) {
            let path = resolve_position(&field_op.path, position)?;
            apply_op(&mut work, &path, &field_op.op, now, meter)?;
        }
        if meter.check().is_err() {
            return Ok(false);
        }
        check_id(doc, &work)?;
        if work.values().any(|v| deeper_than(v, MAX_DOCUMENT_DEPTH)) {
            return Err(QueryError::new(format!(
                "the update would nest the document deeper than {MAX_DOCUMENT_DEPTH} levels"
            )));
        }
        let changed = !identical_documents(doc, &work);
        if changed {
            *doc = work;
        }
        Ok(changed)
    }
}

/// `_id` may be set where there was none (an upsert) but never changed.
fn check_id(before: &Map<String, Value>, after: &Map<String, Value>) -> Result<(), QueryError> {
    let Some(id) = before.get("_id") else { return Ok(()) };
    match after.get("_id") {
        Some(new) if identical(id, new) => Ok(()),
        _ => Err(QueryError::new(
            "Performing an update on the path '_id' would modify the immutable field '_id'",
        )),
    }
}

fn resolve_position(path: &Path, position: Option<usize>) -> Result<Path, QueryError> {
    if !path.parts().iter().any(|p| p == "$") {
        return Ok(path.clone());
    }
    match position {
        Some(index) => Ok(path.with_position(index)),
        None => Err(QueryError::new(
            "The positional operator did not find the match needed from the query.",
        )),
    }
}

/// A field path of an update: at most one positional `$`, not first; no other `$` names.
fn parse_update_path(field: &str) -> Result<Path, QueryError> {
    let path = Path::parse(field)?;
    let parts = path.parts();
    for part in parts {
        if part.starts_with("$[") {
            return Err(QueryError::new(format!(
                "array filters and $[] are not supported (in '{field}')"
            )));
        }
        if part.starts_with('$') && part != "$" {
            return Err(QueryError::new(format!(
                "The dollar ($) prefixed field '{part}' in '{field}' is not valid for storage."
            )));
        }
    }
    if parts[0] == "$" {
        return Err(QueryError::new(format!(
            "Cannot have positional (i.e. '$') element in the first position in path '{field}'"
        )));
    }
    if parts.iter().filter(|p| *p == "$").count() > 1 {
        return Err(QueryError::new(format!(
            "Too many positional (i.e. '$') elements found in path '{field}'"
        )));
    }
    Ok(path)
}

fn parse_op(operator: &str, path: &Path, arg: &Value) -> Result<Op, QueryError> {
    Ok(match operator {
        "$set" | "$setOnInsert" => Op::Set(arg.clone()),
        "$unset" => Op::Unset,
        "$inc" => Op::Inc(number_arg("increment", arg)?),
        "$mul" => Op::Mul(number_arg("multiply", arg)?),
        "$min" => Op::Min(arg.clone()),
        "$max" => Op::Max(arg.clone()),
        "$rename" => Op::Rename(parse_rename(path, arg)?),
        "$push" => Op::Push(parse_push(arg)?),
        "$addToSet" => Op::AddToSet(parse_add_to_set(arg)?),
        "$pull" => Op::Pull(parse_pull(arg)?),
        "$pullAll" => match arg {
            Value::Array(items) => Op::PullAll(items.clone()),
            _ => {
                return Err(QueryError::new(format!(
                    "$pullAll requires an array argument but was given a {}",
                    type_name(arg)
                )))
            }
        },
        "$pop" => Op::Pop { first: parse_pop(arg)? },
        "$currentDate" => parse_current_date(arg)?,
        _ => return Err(QueryError::new(format!("Unknown modifier: {operator}"))),
    })
}

fn number_arg(verb: &str, arg: &Value) -> Result<Number, QueryError> {
    match arg {
        Value::Number(n) => Ok(n.clone()),
        _ => Err(QueryError::new(format!("Cannot {verb} with non-numeric argument: {arg}"))),
    }
}

fn parse_rename(path: &Path, arg: &Value) -> Result<Path, QueryError> {
    let Value::String(to) = arg else {
        return Err(QueryError::new(format!(
            "The 'to' field for $rename must be a string: {path}: {arg}"
        )));
    };
    let to = parse_update_path(to)?;
    if path.parts().iter().chain(to.parts()).any(|p| p == "$") {
        return Err(QueryError::new("The source and target field for $rename may not be dynamic"));
    }
    if to == *path {
        return Err(QueryError::new(format!(
            "The source and target field for $rename must differ: {path}: \"{to}\""
        )));
    }
    Ok(to)
}

/// The `$each` list of a `$push`/`$addToSet` argument, when it has one.
fn each_list<'a>(operator: &str, arg: &'a Value) -> Result<Option<&'a Vec<Value>>, QueryError> {
    let Some(each) = arg.as_object().and_then(|m| m.get("$each")) else { return Ok(None) };
    match each {
        Value::Array(items) => Ok(Some(items)),
        _ => Err(QueryError::new(format!(
            "The argument to $each in {operator} must be an array but it was of type: {}",
            type_name(each)
        ))),
    }
}

fn parse_push(arg: &Value) -> Result<Push, QueryError> {
    let Some(each) = each_list("$push", arg)? else {
        return Ok(Push { each: vec![arg.clone()], position: None, sort: None, slice: None });
    };
    let mut push = Push { each: each.clone(), position: None, sort: None, slice: None };
    for (key, value) in arg.as_object().into_iter().flatten() {
        match key.as_str() {
            "$each" => {}
            "$slice" => push.slice = Some(integer_modifier("$slice", value)?),
            "$position" => push.position = Some(integer_modifier("$position", value)?),
            "$sort" => push.sort = Some(parse_push_sort(value)?),
            _ => return Err(QueryError::new(format!("Unrecognized clause in $push: {key}"))),
        }
    }
    Ok(push)
}

fn integer_modifier(name: &str, value: &Value) -> Result<i64, QueryError> {
    let as_int = value.as_i64().or_else(|| {
        value.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
    });
    as_int.ok_or_else(|| {
        QueryError::new(format!(
            "The value for {name} must be an integer value but was given type: {}",
            type_name(value)
        ))
    })
}

fn parse_push_sort(value: &Value) -> Result<PushSort, QueryError> {
    match value {
        Value::Number(_) => match integer_modifier("$sort", value)? {
            1 => Ok(PushSort::Values { descending: false }),
            -1 => Ok(PushSort::Values { descending: true }),
            _ => Err(QueryError::new("The $sort element value must be either 1 or -1")),
        },
        Value::Object(_) => Ok(PushSort::Fields(Sort::parse(value)?)),
        _ => Err(QueryError::new(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort \
             embedded fields",
        )),
    }
}

fn parse_add_to_set(arg: &Value) -> Result<Vec<Value>, QueryError> {
    let Some(each) = each_list("$addToSet", arg)? else { return Ok(vec![arg.clone()]) };
    if arg.as_object().is_some_and(|m| m.len() > 1) {
        return Err(QueryError::new("$addToSet accepts only the $each modifier"));
    }
    Ok(each.clone())
}

/// `$pull` takes a value (removes equal elements), operators on the elements (`{"$gte": 6}`) or a
/// query applied to each element as though it were a top-level document (`{"qty": {"$lt": 1}}`).
fn parse_pull(arg: &Value) -> Result<PullCond, QueryError> {
    if operators(arg)?.is_some() || as_document(arg).is_some() {
        return Ok(PullCond::Matching(parse_elem_match(arg, 0)?));
    }
    Ok(PullCond::Equal(arg.clone()))
}

fn parse_pop(arg: &Value) -> Result<bool, QueryError> {
    match arg.as_f64() {
        Some(1.0) => Ok(false),
        Some(-1.0) => Ok(true),
        _ => Err(QueryError::new(format!("$pop expects 1 or -1, found: {arg}"))),
    }
}

fn parse_current_date(arg: &Value) -> Result<Op, QueryError> {
    match arg {
        Value::Bool(true) => Ok(Op::CurrentDate),
        Value::Object(map) if map.len() == 1 => match map.get("$type").and_then(Value::as_str) {
            Some("date") => Ok(Op::CurrentDate),
            Some("timestamp") => {
                Err(QueryError::new("$currentDate with $type timestamp is not supported"))
            }
            _ => Err(QueryError::new(
                "The '$type' string field is required to be 'date' or 'timestamp'",
            )),
        },
        _ => Err(QueryError::new(format!(
            "{arg} is not valid type for $currentDate. Please use a boolean ('true') or a $type \
             expression ({{$type: 'timestamp/date'}})."
        ))),
    }
}

/// Two operations on the same path, or on a path and one of its prefixes, conflict.
fn check_conflicts<'a>(ops: impl Iterator<Item = &'a FieldOp>) -> Result<(), QueryError> {
    let mut paths: Vec<&Path> = Vec::new();
    for field_op in ops {
        paths.push(&field_op.path);
        if let Op::Rename(to) = &field_op.op {
            paths.push(to);
        }
    }
    // After sorting, a path's extensions follow it directly.
    paths.sort_by(|a, b| a.parts().cmp(b.parts()));
    for pair in paths.windows(2) {
        let (short, long) = (pair[0], pair[1]);
        if long.parts().starts_with(short.parts()) {
            return Err(QueryError::new(format!(
                "Updating the path '{long}' would create a conflict at '{short}'"
            )));
        }
    }
    Ok(())
}

/// A `replace_one` replacement: an object with no `$` operators at its top level.
pub fn check_replacement(doc: &Value) -> Result<Map<String, Value>, QueryError> {
    let Value::Object(map) = doc else {
        return Err(QueryError::new("replacement must be an object"));
    };
    if let Some(key) = map.keys().find(|k| k.starts_with('$')) {
        return Err(QueryError::new(format!(
            "replacement can not include $ operators (found {key})"
        )));
    }
    Ok(map.clone())
}
