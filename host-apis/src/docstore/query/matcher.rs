//! Filter evaluation: whether a parsed filter matches a document, and which array element made
//! it match (for the positional `$` update operator).
//!
//! A predicate on a path looks at every value the path reaches (see `path::leaves`); a value that
//! is an array is tested as a whole and element by element. Negations (`$ne`, `$nin`, `$not`,
//! `$nor`) negate the whole test, so `{"a": {"$ne": 1}}` rejects `{"a": [1, 2]}`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::filter::{CmpOp, ElemCond, Node, Pred};
use super::path::{leaves, Leaf};
use super::value::{as_document, compare_values, kind, values_equal};

/// `None` when there is no match; otherwise the array position that matched, if any.
pub(crate) type Hit = Option<Option<usize>>;

const MATCH: Hit = Some(None);

fn negate(hit: Hit) -> Hit {
    match hit {
        Some(_) => None,
        None => MATCH,
    }
}

pub(crate) fn eval(node: &Node, doc: &Map<String, Value>) -> Hit {
    match node {
        Node::And(children) => {
            let mut position = None;
            for child in children {
                position = position.or(eval(child, doc)?);
            }
            Some(position)
        }
        // Like MongoDB, `$or` and `$nor` report no position.
        Node::Or(children) => children.iter().any(|c| eval(c, doc).is_some()).then_some(None),
        Node::Nor(children) => children.iter().all(|c| eval(c, doc).is_none()).then_some(None),
        Node::Field(path, pred) => eval_pred(pred, &leaves(doc, path), true),
    }
}

/// Tests `pred` on `leaves`; `expand` says whether array values are also tested element by
/// element (not for `$elemMatch` on values, which tests each element as it is).
fn eval_pred(pred: &Pred, leaves: &[Leaf], expand: bool) -> Hit {
    match pred {
        Pred::Eq(x) => any_value(leaves, expand, |v| equals(v, x)),
        Pred::Ne(x) => negate(any_value(leaves, expand, |v| equals(v, x))),
        Pred::Cmp(op, x) => any_value(leaves, expand, |v| compares(*op, v, x)),
        Pred::In(xs) => any_value(leaves, expand, |v| xs.iter().any(|x| equals(v, x))),
        Pred::Nin(xs) => negate(any_value(leaves, expand, |v| xs.iter().any(|x| equals(v, x)))),
        Pred::Exists(wanted) => {
            (leaves.iter().any(|l| l.value.is_some()) == *wanted).then_some(None)
        }
        Pred::Not(preds) => negate(all_preds(preds, leaves, expand)),
        Pred::ElemMatch(cond) => elem_match(cond, leaves),
        Pred::Size(n) => leaves
            .iter()
            .any(|l| matches!(l.value, Some(Value::Array(items)) if items.len() == *n))
            .then_some(None),
        Pred::All(xs) => all_of(xs, |x| any_value(leaves, expand, |v| equals(v, x))),
        Pred::AllElemMatch(conds) => all_of(conds, |cond| elem_match(cond, leaves)),
    }
}

/// Every item must hit; the first position found wins. An empty list matches nothing.
fn all_of<T>(items: &[T], mut hit: impl FnMut(&T) -> Hit) -> Hit {
    if items.is_empty() {
        return None;
    }
    let mut position = None;
    for item in items {
        position = position.or(hit(item)?);
    }
    Some(position)
}

fn all_preds(preds: &[Pred], leaves: &[Leaf], expand: bool) -> Hit {
    let mut position = None;
    for pred in preds {
        position = position.or(eval_pred(pred, leaves, expand)?);
    }
    Some(position)
}

/// Whether `test` holds for some leaf value (or missing leaf); arrays are tried element by
/// element first, then as a whole.
fn any_value(leaves: &[Leaf], expand: bool, test: impl Fn(Option<&Value>) -> bool) -> Hit {
    for leaf in leaves {
        if let (true, Some(Value::Array(items))) = (expand, leaf.value) {
            if let Some(i) = items.iter().position(|item| test(Some(item))) {
                return Some(leaf.position.or(Some(i)));
            }
        }
        if test(leaf.value) {
            return Some(leaf.position);
        }
    }
    None
}

/// Equality; a missing field equals null.
fn equals(value: Option<&Value>, x: &Value) -> bool {
    match value {
        Some(v) => values_equal(v, x),
        None => x.is_null(),
    }
}

/// An ordered comparison, only within one type bracket; `$gte`/`$lte` null also match missing.
fn compares(op: CmpOp, value: Option<&Value>, x: &Value) -> bool {
    let Some(v) = value else {
        return x.is_null() && matches!(op, CmpOp::Gte | CmpOp::Lte);
    };
    if kind(v) != kind(x) {
        return false;
    }
    let order = compare_values(v, x);
    match op {
        CmpOp::Gt => order == Ordering::Greater,
        CmpOp::Gte => order != Ordering::Less,
        CmpOp::Lt => order == Ordering::Less,
        CmpOp::Lte => order != Ordering::Greater,
    }
}

fn elem_match(cond: &ElemCond, leaves: &[Leaf]) -> Hit {
    for leaf in leaves {
        if let Some(Value::Array(items)) = leaf.value {
            if let Some(i) = items.iter().position(|item| cond.matches(item)) {
                return Some(leaf.position.or(Some(i)));
            }
        }
    }
    None
}

impl ElemCond {
    /// Whether one array element satisfies this condition.
    pub(crate) fn matches(&self, item: &Value) -> bool {
        match self {
            ElemCond::Value(preds) => {
                let leaf = [Leaf { value: Some(item), position: None }];
                all_preds(preds, &leaf, false).is_some()
            }
            ElemCond::Document(node) => as_document(item).is_some_and(|d| eval(node, d).is_some()),
        }
    }
}
