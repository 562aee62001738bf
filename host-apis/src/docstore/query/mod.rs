//! MongoDB's query language over `serde_json::Value`, implemented once and shared by every
//! document-store backend: filters ([`Filter`]), updates ([`Update`], [`check_replacement`]),
//! projections ([`Projection`]), sorts ([`Sort`]) and the BSON comparison order
//! ([`compare_values`]).
//!
//! Documents are JSON objects. Two extended-JSON forms are scalar values of their BSON type,
//! never embedded documents: an ObjectId `{"$oid": "<24 hex digits>"}` and a datetime
//! `{"$date": <integer ms since epoch>}`. Everything here is pure: no I/O, no panics on any input
//! (malformed filters, updates, projections and sorts are [`QueryError`]s) and bounded recursion.

mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod matcher;
mod meter;
mod path;
mod projection;
mod sort;
mod update;
mod update_ops;
mod value;

#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
mod tests;

pub use filter::Filter;
pub(crate) use filter::{CmpOp, Node, Pred};
pub use meter::{Meter, OutOfTime};
pub(crate) use path::array_index;
pub use projection::Projection;
pub use sort::Sort;
pub use update::{check_replacement, Update};
pub(crate) use value::as_oid;
pub use value::compare_values;

/// How deeply filters may nest (`$and` in `$or` in `$elemMatch` ...).
pub const MAX_DEPTH: usize = 100;

/// Why a filter, update, projection or sort was refused; the message reads like MongoDB's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

impl QueryError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
