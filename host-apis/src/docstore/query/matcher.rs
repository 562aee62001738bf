//! Filter evaluation: whether a parsed filter matches a document, and which array element made
//! it match (for the positional `$` update operator).
//!
//! A predicate on a path looks at every value the path reaches (see `path::leaves`); a value that
//! is an array is tested as a whole and element by element. Negations (`$ne`, `$nin`, `$not`,
//! `$nor`) negate the whole test, so `{"a": {"$ne": 1}}` rejects `{"a": [1, 2]}`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::filter::{CmpOp, ElemCond, Node, Pred};
use super::meter::Meter;
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

pub(crate) fn eval(node: &Node, doc: &Map<String, Value>, meter: &Meter) -> Hit {
    if !meter.tick() {
        return None;
    }
    match node {
        Node::And(children) => {
            let mut position = None;
            for child in children {
                position = position.or(eval(child, doc, meter)?);
            }
            Some(position)
        }
        // Like MongoDB, `$or` and `$nor` report no position.
        Node::Or(children) => {
            children.iter().any(|c| eval(c, doc, meter).is_some()).then_some(None)
        }
        Node::Nor(children) => {
            children.iter().all(|c| eval(c, doc, meter).is_none()).then_some(None)
        }
        Node::Field(path, pred) => eval_pred(pred, &leaves(doc, path), true, meter),
    }
}

/// Tests `pred` on `leaves`; `expand` says whether array values are also tested element by
/// element (not for `$elemMatch` on values, which tests each element as it is). Every value
/// compared counts on `meter`, so that a `$in` or `$all` of many values against a long array
/// stops at the deadline.
fn eval_pred(pred: &Pred, leaves: &[Leaf], expand: bool, meter: &Meter) -> Hit {
    let one_of = |v: Option<&Value>, xs: &[Value]| {
        xs.iter().take_while(|_| meter.tick()).any(|x| equals(v, x))
    };
    match pred {
        Pred::Eq(x) => any_value(leaves, expand, meter, |v| equals(v, x)),
        Pred::Ne(x) => negate(any_value(leaves, expand, meter, |v| equals(v, x))),
        Pred::Cmp(op, x) => any_value(leaves, expand, meter, |v| compares(*op, v, x)),
        Pred::In(xs) => any_value(leaves, expand, meter, |v| one_of(v, xs)),
        Pred::Nin(xs) => negate(any_value(leaves, expand, meter, |v| one_of(v, xs))),
        Pred::Exists(wanted) => {
            (leaves.iter().any(|l| l.value.is_some()) == *wanted).then_some(None)
        }
        Pred::Not(preds) => negate(all_preds(preds, leaves, expand, meter)),
        Pred::ElemMatch(cond) => elem_match(cond, leaves, meter),
        Pred::Size(n) => leaves
            .iter()
            .any(|l| matches!(l.value, Some(Value::Array(items)) if items.len() == *n))
            .then_some(None),
        Pred::All(xs) => all_of(xs, meter, |x| any_value(leaves, expand, meter, |v| equals(v, x))),
        Pred::AllElemMatch(conds) => all_of(conds, meter, |cond| elem_match(cond, leaves, meter)),
    }
}

/// Every item must hit; the first position found wins. An empty list matches nothing.
fn all_of<T>(items: &[T], meter: &Meter, mut hit: impl FnMut(&T) -> Hit) -> Hit {
    if items.is_empty() {
        return None;
    }
    let mut position = None;
    for item in items {
        if !meter.tick() {
            return None;
        }
        position = position.or(hit(item)?);
    }
    Some(position)
}

fn all_preds(preds: &[Pred], leaves: &[Leaf], expand: bool, meter: &Meter) -> Hit {
    let mut position = None;
    for pred in preds {
        position = position.or(eval_pred(pred, leaves, expand, meter)?);
    }
    Some(position)
}

/// Whether `test` holds for some leaf value (or missing leaf); arrays are tried element by
/// element first, then as a whole.
fn any_value(
    leaves: &[Leaf],
    expand: bool,
    meter: &Meter,
    test: impl Fn(Option<&Value>) -> bool,
) -> Hit {
    for leaf in leaves {
        if let (true, Some(Value::Array(items))) = (expand, leaf.value) {
            let found = items.iter().take_while(|_| meter.tick()).position(|item| test(Some(item)));
            if let Some(i) = found {
                return Some(leaf.position.or(Some(i)));
            }
        }
        if !meter.tick() {
            return None;
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

fn elem_match(cond: &ElemCond, leaves: &[Leaf], meter: &Meter) -> Hit {
    for leaf in leaves {
        if let Some(Value::Array(items)) = leaf.value {
            let found = items.iter().position(|item| cond.matches(item, meter));
            if let Some(i) = found {
                return Some(leaf.position.or(Some(i)));
            }
        }
    }
    None
}

impl ElemCond {
    /// Whether one array element satisfies this condition (false once `meter` ran out).
    pub(crate) fn matches(&self, item: &Value, meter: &Meter) -> bool {
        if !meter.tick() {
            return false;
        }
        match self {
            ElemCond::Value(preds) => {
                let leaf = [Leaf { value: Some(item), position: None }];
                all_preds(preds, &leaf, false, meter).is_some()
            }
            ElemCond::Document(node) => {
                as_document(item).is_some_and(|d| eval(node, d, meter).is_some())
            }
        }
    }
}
