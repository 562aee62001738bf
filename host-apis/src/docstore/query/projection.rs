//! Projections: which fields of a found document to return. Either inclusion (`{"a": 1,
//! "b.c": 1}`, `_id` kept unless `"_id": 0`) or exclusion (`{"a": 0}`), never both (except for
//! `_id`); plus `$slice` (`n`, `-n`, `[skip, n]`) and `$elemMatch` (the first matching element).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::filter::{parse_elem_match, ElemCond};
use super::meter::Meter;
use super::path::Path;
use super::value::{as_document, is_special};
use super::QueryError;

/// A parsed projection.
#[derive(Debug, Clone)]
pub struct Projection {
    tree: Tree,
    inclusion: bool,
}

type Tree = BTreeMap<String, Node>;

#[derive(Debug, Clone)]
enum Node {
    Include,
    Exclude,
    Slice { skip: i64, limit: Option<i64> },
    ElemMatch(ElemCond),
    Children(Tree),
}

impl Projection {
    pub fn parse(projection: &Value) -> Result<Projection, QueryError> {
        let Value::Object(spec) = projection else {
            return Err(QueryError::new("projection must be an object"));
        };
        let mut tree = Tree::new();
        let (mut included, mut excluded) = (None, None);
        for (field, value) in spec {
            let path = Path::parse(field)?;
            if path.parts().iter().any(|part| part.starts_with('$')) {
                return Err(QueryError::new(format!(
                    "unsupported projection path '{field}': positional ($) and $-prefixed \
                     fields are not supported"
                )));
            }
            let node = parse_node(field, value)?;
            let is_id = field == "_id";
            match node {
                Node::Include | Node::ElemMatch(_) if !is_id => included = included.or(Some(field)),
                Node::Exclude if !is_id => excluded = excluded.or(Some(field)),
                _ => {}
            }
            insert(&mut tree, &path, node)?;
        }
        if let (Some(_), Some(field)) = (included, excluded) {
            return Err(QueryError::new(format!(
                "Cannot do exclusion on field {field} in inclusion projection"
            )));
        }
        // `{"_id": 1}` alone is an inclusion too.
        let id_only = matches!(tree.get("_id"), Some(Node::Include)) && excluded.is_none();
        let inclusion = included.is_some() || id_only;
        if inclusion && !tree.contains_key("_id") {
            tree.insert("_id".to_string(), Node::Include);
        }
        Ok(Projection { tree, inclusion })
    }

    /// The projected copy of `doc`.
    pub fn apply(&self, doc: &Map<String, Value>) -> Map<String, Value> {
        if self.inclusion {
            include_document(doc, &self.tree)
        } else {
            let mut out = doc.clone();
            exclude_document(&mut out, &self.tree);
            out
        }
    }
}

fn parse_node(field: &str, value: &Value) -> Result<Node, QueryError> {
    match value {
        Value::Bool(true) => Ok(Node::Include),
        Value::Bool(false) => Ok(Node::Exclude),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Node::Exclude),
        Value::Number(_) => Ok(Node::Include),
        Value::Object(map) if map.len() == 1 => {
            if let Some(arg) = map.get("$slice") {
                return parse_slice(arg);
            }
            if let Some(arg) = map.get("$elemMatch") {
                if field.contains('.') {
                    return Err(QueryError::new(
                        "Cannot use $elemMatch projection on a nested field.",
                    ));
                }
                return Ok(Node::ElemMatch(parse_elem_match(arg, 0)?));
            }
            Err(unsupported(field))
        }
        _ => Err(unsupported(field)),
    }
}

fn unsupported(field: &str) -> QueryError {
    QueryError::new(format!(
        "unsupported projection for '{field}': use 0/1/true/false, $slice or $elemMatch"
    ))
}

fn parse_slice(arg: &Value) -> Result<Node, QueryError> {
    let int = |v: &Value| v.as_i64();
    match arg {
        Value::Number(_) => match int(arg) {
            Some(n) if n >= 0 => Ok(Node::Slice { skip: 0, limit: Some(n) }),
            Some(n) => Ok(Node::Slice { skip: n, limit: None }),
            None => Err(QueryError::new("$slice only supports integers")),
        },
        Value::Array(pair) if pair.len() == 2 => match (int(&pair[0]), int(&pair[1])) {
            (Some(_), Some(limit)) if limit <= 0 => {
                Err(QueryError::new("$slice limit must be positive"))
            }
            (Some(skip), Some(limit)) => Ok(Node::Slice { skip, limit: Some(limit) }),
            _ => Err(QueryError::new("$slice only supports integers")),
        },
        _ => Err(QueryError::new("$slice only supports numbers and [skip, limit] arrays")),
    }
}

/// Adds `node` at `path`; a path inside another projected path is a collision.
fn insert(tree: &mut Tree, path: &Path, node: Node) -> Result<(), QueryError> {
    let collision = || QueryError::new(format!("Path collision at {path}"));
    let (last, parents) = path.parts().split_last().ok_or_else(collision)?;
    let mut current = tree;
    for part in parents {
        let child = current.entry(part.clone()).or_insert_with(|| Node::Children(Tree::new()));
        match child {
            Node::Children(next) => current = next,
            _ => return Err(collision()),
        }
    }
    if current.contains_key(last) {
        return Err(collision());
    }
    current.insert(last.clone(), node);
    Ok(())
}

/// The fields of `doc` the inclusion tree names, in document order.
fn include_document(doc: &Map<String, Value>, tree: &Tree) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in doc {
        if let Some(projected) = tree.get(key).and_then(|node| include_value(value, node)) {
            out.insert(key.clone(), projected);
        }
    }
    out
}

fn include_value(value: &Value, node: &Node) -> Option<Value> {
    match node {
        Node::Include => Some(value.clone()),
        Node::Exclude => None,
        Node::Slice { skip, limit } => Some(slice(value, *skip, *limit)),
        Node::ElemMatch(cond) => match value {
            Value::Array(items) => {
                let first = items.iter().find(|item| cond.matches(item, &Meter::unbounded()))?;
                Some(Value::Array(vec![first.clone()]))
            }
            _ => None,
        },
        Node::Children(tree) => match value {
            // Inside arrays only documents (and nested arrays) keep projected fields.
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter(|item| item.is_array() || as_document(item).is_some())
                    .filter_map(|item| include_value(item, node))
                    .collect(),
            )),
            _ => as_document(value).map(|doc| Value::Object(include_document(doc, tree))),
        },
    }
}

/// Removes what the exclusion tree names from `doc` (and applies its `$slice`s).
fn exclude_document(doc: &mut Map<String, Value>, tree: &Tree) {
    for (key, node) in tree {
        match node {
            Node::Exclude => {
                doc.retain(|k, _| k != key);
            }
            Node::Slice { skip, limit } => {
                if let Some(value) = doc.get_mut(key) {
                    *value = slice(value, *skip, *limit);
                }
            }
            Node::Children(children) => {
                if let Some(value) = doc.get_mut(key) {
                    exclude_value(value, children);
                }
            }
            Node::Include | Node::ElemMatch(_) => {}
        }
    }
}

fn exclude_value(value: &mut Value, tree: &Tree) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| exclude_value(item, tree)),
        Value::Object(map) if !is_special(map) => exclude_document(map, tree),
        _ => {}
    }
}

/// `$slice`: `limit` none means "the last `-skip`" (a negative count); otherwise skip (from the
/// end when negative) then take `limit`. Non-arrays are returned as they are.
fn slice(value: &Value, skip: i64, limit: Option<i64>) -> Value {
    let Value::Array(items) = value else { return value.clone() };
    let len = items.len();
    let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(len);
    let (start, count) = match limit {
        None => {
            let count = clamp(skip.unsigned_abs());
            (len - count, count)
        }
        Some(limit) => {
            let start = if skip >= 0 {
                clamp(skip.unsigned_abs())
            } else {
                len - clamp(skip.unsigned_abs())
            };
            (start, clamp(limit.unsigned_abs()))
        }
    };
    Value::Array(items.iter().skip(start).take(count).cloned().collect())
}
