//! Query filters: parsing a MongoDB filter document into a tree of predicates, once, and the
//! [`Filter`] API the backends call (evaluation lives in `matcher`).

use serde_json::{Map, Value};

use super::matcher;
use super::meter::{Meter, OutOfTime};
use super::path::Path;
use super::value::{as_date, as_oid};
use super::{QueryError, MAX_DEPTH};

/// A parsed filter: parsed once, matched many times.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

/// A node of a filter: a logical combination or one predicate on one path.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Field(Path, Pred),
}

/// A comparison operator with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One predicate on the values a path reaches.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Eq(Value),
    Ne(Value),
    Cmp(CmpOp, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Not(Vec<Pred>),
    ElemMatch(Box<ElemCond>),
    Size(usize),
    All(Vec<Value>),
    AllElemMatch(Vec<ElemCond>),
}

/// A condition on one array element: operators on the element itself (`{"$gt": 1}`) or a query
/// on the element as a document (`{"sku": "x"}`).
#[derive(Debug, Clone)]
pub(crate) enum ElemCond {
    Value(Vec<Pred>),
    Document(Node),
}

impl Filter {
    /// Parses a filter document; `{}` matches every document.
    pub fn parse(filter: &Value) -> Result<Filter, QueryError> {
        let Value::Object(map) = filter else {
            return Err(QueryError::new("filter must be an object"));
        };
        Ok(Filter { root: parse_document(map, 0)? })
    }

    /// Whether the filter matches `doc`, however long that takes (see [`Filter::match_within`]).
    pub fn matches(&self, doc: &Map<String, Value>) -> bool {
        self.match_position(doc).is_some()
    }

    /// Like [`Filter::matches`], also giving the index of the array element that matched (for the
    /// positional `$` update operator): the first array field in the filter matched by element.
    pub fn match_position(&self, doc: &Map<String, Value>) -> Option<Option<usize>> {
        matcher::eval(&self.root, doc, &Meter::unbounded())
    }

    /// [`Filter::match_position`] with its work counted on `meter`: [`OutOfTime`] when the
    /// meter's deadline passed before the answer was known.
    pub fn match_within(
        &self,
        doc: &Map<String, Value>,
        meter: &Meter,
    ) -> Result<Option<Option<usize>>, OutOfTime> {
        let hit = matcher::eval(&self.root, doc, meter);
        meter.check().map(|()| hit)
    }

    /// The equality fields of the filter, top level and inside top-level `$and`s, in filter
    /// order; used to seed an upserted document.
    pub fn equality_fields(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        collect_equalities(&self.root, &mut out);
        out
    }

    /// Whether this is `{}` (or only `$comment`s): every document matches.
    pub fn matches_everything(&self) -> bool {
        matches!(&self.root, Node::And(children) if children.is_empty())
    }

    /// The parsed tree (for backends that translate filters, e.g. into SQL).
    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// The id, when the filter is exactly an equality on `_id` (`{"_id": X}` or
    /// `{"_id": {"$eq": X}}`): lets backends do a point lookup.
    pub fn id_equality(&self) -> Option<&Value> {
        match &self.root {
            Node::And(children) => match children.as_slice() {
                [Node::Field(path, Pred::Eq(id))] if path.is_simple("_id") => Some(id),
                _ => None,
            },
            _ => None,
        }
    }
}

fn collect_equalities(node: &Node, out: &mut Vec<(String, Value)>) {
    match node {
        Node::And(children) => children.iter().for_each(|c| collect_equalities(c, out)),
        Node::Field(path, Pred::Eq(value)) => out.push((path.to_string(), value.clone())),
        _ => {}
    }
}

fn too_deep() -> QueryError {
    QueryError::new(format!("exceeded maximum query tree depth of {MAX_DEPTH}"))
}

/// Parses a query document (the top level, a `$and` entry, an `$elemMatch` on documents).
pub(crate) fn parse_document(map: &Map<String, Value>, depth: usize) -> Result<Node, QueryError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut children = Vec::new();
    for (key, value) in map {
        if key.starts_with('$') {
            if let Some(node) = parse_top_operator(key, value, depth)? {
                children.push(node);
            }
        } else {
            parse_field(Path::parse(key)?, value, depth, &mut children)?;
        }
    }
    Ok(Node::And(children))
}

fn parse_top_operator(key: &str, value: &Value, depth: usize) -> Result<Option<Node>, QueryError> {
    let build: fn(Vec<Node>) -> Node = match key {
        "$and" => Node::And,
        "$or" => Node::Or,
        "$nor" => Node::Nor,
        "$comment" => return Ok(None),
        "$where" | "$expr" | "$text" | "$jsonSchema" => return Err(unsupported(key)),
        _ => return Err(QueryError::new(format!("unknown top level operator: {key}"))),
    };
    let entries = match value {
        Value::Array(entries) if !entries.is_empty() => entries,
        _ => return Err(QueryError::new("$and/$or/$nor must be a nonempty array")),
    };
    let mut nodes = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(map) = entry else {
            return Err(QueryError::new("$or/$and/$nor entries need to be full objects"));
        };
        nodes.push(parse_document(map, depth + 1)?);
    }
    Ok(Some(build(nodes)))
}

fn unsupported(operator: &str) -> QueryError {
    QueryError::new(format!("{operator} is not supported"))
}

/// The operators of `value` when it is an operator object (`{"$gt": 1}`), none when it is a
/// literal. `{"$oid": ..}` and `{"$date": ..}` are literals; malformed ones are errors.
pub(crate) fn operators(value: &Value) -> Result<Option<&Map<String, Value>>, QueryError> {
    let Value::Object(map) = value else { return Ok(None) };
    if as_oid(map).is_some() || as_date(map).is_some() {
        return Ok(None);
    }
    if map.len() == 1 && map.contains_key("$oid") {
        return Err(QueryError::new("invalid $oid: expected a string of 24 hex digits"));
    }
    if map.len() == 1 && map.contains_key("$date") {
        return Err(QueryError::new("invalid $date: expected integer milliseconds since epoch"));
    }
    Ok(map.keys().any(|k| k.starts_with('$')).then_some(map))
}

fn parse_field(
    path: Path,
    value: &Value,
    depth: usize,
    out: &mut Vec<Node>,
) -> Result<(), QueryError> {
    match operators(value)? {
        None => out.push(Node::Field(path, Pred::Eq(value.clone()))),
        Some(ops) => {
            for pred in parse_operators(ops, depth)? {
                out.push(Node::Field(path.clone(), pred));
            }
        }
    }
    Ok(())
}

/// Parses an operator object (`{"$gt": 1, "$lt": 5}`) into its predicates.
pub(crate) fn parse_operators(
    ops: &Map<String, Value>,
    depth: usize,
) -> Result<Vec<Pred>, QueryError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if ops.contains_key("$options") && !ops.contains_key("$regex") {
        return Err(QueryError::new("$options needs a $regex"));
    }
    ops.iter().map(|(op, arg)| parse_operator(op, arg, depth)).collect()
}

fn parse_operator(op: &str, arg: &Value, depth: usize) -> Result<Pred, QueryError> {
    Ok(match op {
        "$eq" => Pred::Eq(arg.clone()),
        "$ne" => Pred::Ne(arg.clone()),
        "$gt" => Pred::Cmp(CmpOp::Gt, arg.clone()),
        "$gte" => Pred::Cmp(CmpOp::Gte, arg.clone()),
        "$lt" => Pred::Cmp(CmpOp::Lt, arg.clone()),
        "$lte" => Pred::Cmp(CmpOp::Lte, arg.clone()),
        "$in" => Pred::In(value_list(op, arg)?),
        "$nin" => Pred::Nin(value_list(op, arg)?),
        "$exists" => Pred::Exists(truthy(arg)),
        "$not" => Pred::Not(parse_not(arg, depth)?),
        "$elemMatch" => Pred::ElemMatch(Box::new(parse_elem_match(arg, depth)?)),
        "$size" => Pred::Size(parse_size(arg)?),
        "$all" => parse_all(arg, depth)?,
        "$regex" | "$options" => {
            return Err(QueryError::new("$regex is not supported by this document store"))
        }
        "$type" | "$mod" | "$where" | "$expr" | "$text" | "$bitsAllSet" | "$bitsAnySet"
        | "$bitsAllClear" | "$bitsAnyClear" | "$geoWithin" | "$geoIntersects" | "$near"
        | "$nearSphere" | "$jsonSchema" => return Err(unsupported(op)),
        _ => return Err(QueryError::new(format!("unknown operator: {op}"))),
    })
}

fn value_list(op: &str, arg: &Value) -> Result<Vec<Value>, QueryError> {
    let Value::Array(items) = arg else {
        return Err(QueryError::new(format!("{op} needs an array")));
    };
    for item in items {
        if operators(item)?.is_some() {
            return Err(QueryError::new(format!("cannot nest $ under {op}")));
        }
    }
    Ok(items.clone())
}

/// `$exists` takes any value; false, 0 and null mean "does not exist".
fn truthy(arg: &Value) -> bool {
    match arg {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => true,
    }
}

fn parse_not(arg: &Value, depth: usize) -> Result<Vec<Pred>, QueryError> {
    let Value::Object(map) = arg else {
        return Err(QueryError::new("$not needs a regex or a document"));
    };
    if map.is_empty() {
        return Err(QueryError::new("$not cannot be empty"));
    }
    parse_operators(map, depth + 1)
}

fn parse_size(arg: &Value) -> Result<usize, QueryError> {
    let Value::Number(n) = arg else {
        return Err(QueryError::new("$size needs a number"));
    };
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f < 0.0 {
        return Err(QueryError::new("$size may not be negative"));
    }
    if let Some(u) = n.as_u64() {
        return Ok(usize::try_from(u).unwrap_or(usize::MAX));
    }
    if f.fract() != 0.0 || !f.is_finite() {
        return Err(QueryError::new("$size must be a whole number"));
    }
    Ok(f as usize)
}

/// Parses an `$elemMatch` argument: operators on the element, or a query on element documents
/// (which is what an argument with `$and`/`$or`/`$nor` or plain field names is).
pub(crate) fn parse_elem_match(arg: &Value, depth: usize) -> Result<ElemCond, QueryError> {
    let Value::Object(map) = arg else {
        return Err(QueryError::new("$elemMatch needs an Object"));
    };
    if depth + 1 > MAX_DEPTH {
        return Err(too_deep());
    }
    let logical = map.keys().any(|k| matches!(k.as_str(), "$and" | "$or" | "$nor"));
    if !logical && map.keys().any(|k| k.starts_with('$')) {
        Ok(ElemCond::Value(parse_operators(map, depth + 1)?))
    } else {
        Ok(ElemCond::Document(parse_document(map, depth + 1)?))
    }
}

fn parse_all(arg: &Value, depth: usize) -> Result<Pred, QueryError> {
    let Value::Array(items) = arg else {
        return Err(QueryError::new("$all needs an array"));
    };
    let elem_match = |item: &Value| match item {
        Value::Object(map) => map.len() == 1 && map.contains_key("$elemMatch"),
        _ => false,
    };
    let matching = items.iter().filter(|item| elem_match(item)).count();
    if matching == 0 {
        for item in items {
            if operators(item)?.is_some() {
                return Err(QueryError::new("no $ expressions in $all"));
            }
        }
        return Ok(Pred::All(items.clone()));
    }
    if matching != items.len() {
        return Err(QueryError::new("$all/$elemMatch has to be consistent"));
    }
    let conds = items.iter().filter_map(|item| item.get("$elemMatch"));
    Ok(Pred::AllElemMatch(conds.map(|c| parse_elem_match(c, depth)).collect::<Result<_, _>>()?))
}
