//! Query evaluation shared by every backend: a backend hands over its documents (all of a
//! collection, or the one an `_id` lookup found) and the engine filters, sorts, projects and plans
//! writes, so that every backend answers exactly alike.

use std::collections::HashMap;

use serde_json::Value;

use super::budget::Budget;
use super::objectid::ObjectId;
use super::query::{Filter, Meter};
use super::{
    Change, ChangeKind, DocError, Document, FindQuery, Limits, UpdateOptions, WriteOutcome, Written,
};

/// The key a backend stores a document under: its `_id` as compact JSON, in a canonical form so
/// that ids the query language calls equal share one key (`1` and `1.0`; an ObjectId's hex in
/// either case).
pub fn id_key(id: &Value) -> String {
    canonical_id(id).to_string()
}

/// A stored document's `_id` (null if it has none, which a checked document never lacks).
pub fn id_of(document: &Document) -> Value {
    document.get("_id").cloned().unwrap_or(Value::Null)
}

fn canonical_id(id: &Value) -> Value {
    match id {
        Value::Number(number) if number.is_f64() => match number.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Value::from(f as i64)
            }
            _ => id.clone(),
        },
        Value::Object(map) if map.len() == 1 => match map.get("$oid") {
            Some(Value::String(hex)) => serde_json::json!({ "$oid": hex.to_ascii_lowercase() }),
            _ => id.clone(),
        },
        _ => id.clone(),
    }
}

/// Checks a document before it is stored: size, `_id` and field names.
pub fn check_document(document: &Document, limits: &Limits) -> Result<(), DocError> {
    let size = serde_json::to_vec(document).map_or(usize::MAX, |bytes| bytes.len());
    if size > limits.max_document_bytes {
        return Err(DocError::TooLarge(format!(
            "document is {size} bytes, over the limit of {} bytes",
            limits.max_document_bytes
        )));
    }
    if let Some(Value::Array(_)) = document.get("_id") {
        return Err(DocError::Invalid("can't use an array for _id".into()));
    }
    if let Some(key) = document.keys().find(|key| key.starts_with('$')) {
        return Err(DocError::Invalid(format!("field names cannot start with '$': {key}")));
    }
    Ok(())
}

/// Runs a scan that may block (disk reads, a long collection) without stalling the other tasks
/// of a multi-threaded runtime: `block_in_place` hands this worker's queue and drivers to another
/// thread first, so `/healthz` and other requests keep being answered while it runs.
pub fn scan<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Whether `filter` matches `document` (and where), within the budget.
pub fn hit(
    filter: &Filter,
    document: &Document,
    meter: &Meter,
    budget: &Budget,
) -> Result<Option<Option<usize>>, DocError> {
    filter.match_within(document, meter).map_err(|_| budget.exceeded())
}

/// Checks the documents of an insert and gives each without `_id` a new ObjectId. A repeated
/// `_id` is found with one hash lookup per document, so the check is linear in the batch. The
/// first problem in list order is the one reported (what MongoDB's default `ordered` insert
/// stops at); nothing of the batch is stored then.
pub fn prepare_insert(
    documents: Vec<Value>,
    limits: &Limits,
    budget: &Budget,
) -> Result<Vec<Document>, DocError> {
    let mut first_seen: HashMap<String, usize> = HashMap::with_capacity(documents.len());
    let mut checked = Vec::with_capacity(documents.len());
    for (index, document) in documents.into_iter().enumerate() {
        budget.check()?;
        let Value::Object(mut document) = document else {
            return Err(DocError::Invalid("a document must be a JSON object".into()));
        };
        if !document.contains_key("_id") {
            document.shift_insert(0, "_id".into(), ObjectId::new().to_json());
        }
        check_document(&document, limits)?;
        if let Some(first) = first_seen.insert(id_key(&document["_id"]), index) {
            return Err(DocError::DuplicateKey(format!(
                "E11000 duplicate key error: _id {} appears twice in the batch (documents {first} \
                 and {index}); nothing was inserted",
                document["_id"]
            )));
        }
        checked.push(document);
    }
    Ok(checked)
}

fn json_len(document: &Document) -> usize {
    serde_json::to_vec(document).map_or(0, |bytes| bytes.len())
}

/// The result of a `find` over `documents` (in the backend's natural order).
pub fn select(
    documents: impl Iterator<Item = Result<Document, DocError>>,
    query: &FindQuery,
    limits: &Limits,
    budget: &Budget,
) -> Result<Vec<Document>, DocError> {
    let mut selection = Selection::new(query, limits, budget);
    for document in documents {
        if !selection.offer(document?)? {
            break;
        }
    }
    selection.finish()
}

/// A `find` answered incrementally: the backend offers documents in its natural order (a page
/// at a time, say) until the selection needs no more, then finishes it.
pub struct Selection<'a> {
    query: &'a FindQuery,
    limits: &'a Limits,
    budget: &'a Budget,
    meter: Meter,
    skip: usize,
    limit: usize,
    matched: Vec<Document>,
    held: usize,
}

impl<'a> Selection<'a> {
    pub fn new(query: &'a FindQuery, limits: &'a Limits, budget: &'a Budget) -> Self {
        Self {
            query,
            limits,
            budget,
            meter: budget.meter(),
            skip: usize::try_from(query.skip).unwrap_or(usize::MAX),
            limit: if query.limit == 0 { usize::MAX } else { query.limit as usize },
            matched: Vec::new(),
            held: 0,
        }
    }

    /// Offers the next document; false once no later document can change the answer (enough
    /// matched and nothing to sort).
    pub fn offer(&mut self, document: Document) -> Result<bool, DocError> {
        let budget = self.budget;
        budget.check()?;
        if hit(&self.query.filter, &document, &self.meter, budget)?.is_none() {
            return Ok(true);
        }
        self.held += json_len(&document);
        let bound = if self.query.sort.is_some() { self.limits.max_sort_bytes } else { usize::MAX };
        if self.held > bound {
            return Err(DocError::LimitExceeded(format!(
                "sort exceeded the memory limit of {} bytes; add a filter or a limit",
                self.limits.max_sort_bytes
            )));
        }
        self.matched.push(document);
        Ok(self.query.sort.is_some() || self.matched.len() < self.skip.saturating_add(self.limit))
    }

    /// Sorts, skips, limits and projects what matched.
    pub fn finish(self) -> Result<Vec<Document>, DocError> {
        let Self { query, limits, budget, meter, skip, limit, mut matched, .. } = self;
        if let Some(sort) = &query.sort {
            // A stable sort keeps natural order between equal keys. Past the deadline every
            // pair compares equal, so the sort ends quickly and its (meaningless) order is
            // dropped.
            matched.sort_by(|a, b| {
                if meter.tick() {
                    sort.compare(a, b)
                } else {
                    std::cmp::Ordering::Equal
                }
            });
            meter.check().map_err(|_| budget.exceeded())?;
        }
        let mut result = Vec::new();
        let mut bytes = 0usize;
        for document in matched.into_iter().skip(skip).take(limit) {
            budget.check()?;
            let document = match &query.projection {
                Some(projection) => projection.apply(&document),
                None => document,
            };
            bytes += json_len(&document);
            if bytes > limits.max_result_bytes {
                return Err(DocError::LimitExceeded(format!(
                    "result exceeded the limit of {} bytes; use a limit, skip or projection",
                    limits.max_result_bytes
                )));
            }
            result.push(document);
        }
        Ok(result)
    }
}

pub fn count(
    documents: impl Iterator<Item = Result<Document, DocError>>,
    filter: &Filter,
    budget: &Budget,
) -> Result<u64, DocError> {
    let meter = budget.meter();
    let mut count = 0;
    for document in documents {
        budget.check()?;
        if hit(filter, &document?, &meter, budget)?.is_some() {
            count += 1;
        }
    }
    Ok(count)
}

/// A document an update changes.
#[derive(Debug)]
pub struct Changed {
    /// As it is stored now (the copy the backend handed over, kept for the change hook).
    pub before: Document,
    /// As it will be stored (same `_id`).
    pub after: Document,
}

/// What an update will write.
#[derive(Debug, Default)]
pub struct UpdatePlan {
    pub matched: u64,
    /// Documents that changed, before and after.
    pub changed: Vec<Changed>,
    /// A document to insert because nothing matched and the update upserts.
    pub upsert: Option<Document>,
}

impl UpdatePlan {
    /// What the backend reports once it committed the plan: the counts, an upserted id and the
    /// writes for the change hook.
    pub fn into_outcome(self) -> WriteOutcome {
        let modified = self.changed.len() as u64;
        let written_of = |kind, document: Document, previous| Written {
            kind,
            id: id_of(&document),
            document: Some(document),
            previous,
        };
        let upserted_id = self.upsert.as_ref().and_then(|d| d.get("_id").cloned());
        let mut written: Vec<Written> = self
            .changed
            .into_iter()
            .map(|c| written_of(ChangeKind::Update, c.after, Some(c.before)))
            .collect();
        written.extend(self.upsert.map(|d| written_of(ChangeKind::Insert, d, None)));
        WriteOutcome { matched: self.matched, modified, upserted_id, written }
    }
}

pub fn plan_update(
    documents: impl Iterator<Item = Result<Document, DocError>>,
    filter: &Filter,
    change: &Change,
    options: UpdateOptions,
    limits: &Limits,
    budget: &Budget,
) -> Result<UpdatePlan, DocError> {
    let meter = budget.meter();
    let mut plan = UpdatePlan::default();
    for document in documents {
        budget.check()?;
        let document = document?;
        let Some(position) = hit(filter, &document, &meter, budget)? else { continue };
        plan.matched += 1;
        if let Some(updated) = apply_change(&document, change, position, limits, (&meter, budget))?
        {
            plan.changed.push(Changed { before: document, after: updated });
        }
        if !options.many {
            break;
        }
    }
    if plan.matched == 0 && options.upsert {
        plan.upsert = Some(upsert_document(filter, change, limits, (&meter, budget))?);
    }
    Ok(plan)
}

/// The document after `change`, or none when the change leaves it as it was.
fn apply_change(
    document: &Document,
    change: &Change,
    position: Option<usize>,
    limits: &Limits,
    (meter, budget): (&Meter, &Budget),
) -> Result<Option<Document>, DocError> {
    let mut updated = document.clone();
    match change {
        Change::Update(update) => {
            let changed = update.apply_within(&mut updated, position, meter)?;
            meter.check().map_err(|_| budget.exceeded())?;
            if !changed {
                return Ok(None);
            }
        }
        Change::Replace(replacement) => {
            let id = document.get("_id").cloned().unwrap_or(Value::Null);
            if replacement.get("_id").is_some_and(|new| *new != id) {
                return Err(DocError::Invalid(
                    "the (immutable) field '_id' was found to have been altered".into(),
                ));
            }
            updated = Document::new();
            updated.insert("_id".into(), id);
            updated.extend(replacement.iter().filter(|(k, _)| *k != "_id").map(clone_pair));
            if updated == *document && same_order(&updated, document) {
                return Ok(None);
            }
        }
    }
    check_document(&updated, limits)?;
    Ok(Some(updated))
}

fn clone_pair((key, value): (&String, &Value)) -> (String, Value) {
    (key.clone(), value.clone())
}

fn same_order(a: &Document, b: &Document) -> bool {
    a.keys().eq(b.keys())
}

/// The document an upsert inserts: the filter's equality fields, then the update (with
/// `$setOnInsert`) or the replacement, and a new ObjectId when neither gave an `_id`.
fn upsert_document(
    filter: &Filter,
    change: &Change,
    limits: &Limits,
    (meter, budget): (&Meter, &Budget),
) -> Result<Document, DocError> {
    let mut document = Document::new();
    match change {
        Change::Update(update) => {
            for (path, value) in filter.equality_fields() {
                set_path(&mut document, &path, value);
            }
            update.apply_insert_within(&mut document, meter)?;
            meter.check().map_err(|_| budget.exceeded())?;
        }
        Change::Replace(replacement) => {
            if let Some(id) = filter.id_equality() {
                document.insert("_id".into(), id.clone());
            }
            document.extend(replacement.iter().map(clone_pair));
        }
    }
    if !document.contains_key("_id") {
        document.shift_insert(0, "_id".into(), ObjectId::new().to_json());
    }
    check_document(&document, limits)?;
    Ok(document)
}

/// Sets a dotted path, creating objects on the way (used for upsert seeds).
fn set_path(document: &mut Document, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut current = document;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return;
        }
        let next =
            current.entry(part.to_string()).or_insert_with(|| Value::Object(Document::new()));
        let Value::Object(next) = next else { return };
        current = next;
    }
}

/// The documents a delete removes, as the backend handed them over (the change hook reports
/// them as the previous documents).
pub fn plan_delete(
    documents: impl Iterator<Item = Result<Document, DocError>>,
    filter: &Filter,
    many: bool,
    budget: &Budget,
) -> Result<Vec<Document>, DocError> {
    let meter = budget.meter();
    let mut doomed = Vec::new();
    for document in documents {
        budget.check()?;
        let document = document?;
        if hit(filter, &document, &meter, budget)?.is_some() {
            doomed.push(document);
            if !many {
                break;
            }
        }
    }
    Ok(doomed)
}
