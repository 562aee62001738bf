//! Robustness: thousands of generated filters, updates, projections and sorts (mostly malformed,
//! built from the operator vocabulary) on generated documents must never panic, and comparisons
//! must stay consistent (antisymmetric, every value equal to itself).

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use crate::docstore::query::{compare_values, Filter, Projection, Sort, Update};

const KEYS: &[&str] = &[
    "a",
    "b",
    "a.b",
    "a.0",
    "a.1.b",
    "a.$",
    "a.$.b",
    "$",
    "_id",
    "",
    "a..b",
    "items.sku",
    "a.99999999",
    "$and",
    "$or",
    "$nor",
    "$not",
    "$gt",
    "$lt",
    "$gte",
    "$lte",
    "$in",
    "$nin",
    "$all",
    "$elemMatch",
    "$size",
    "$exists",
    "$eq",
    "$ne",
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$push",
    "$each",
    "$slice",
    "$position",
    "$sort",
    "$addToSet",
    "$pull",
    "$pullAll",
    "$pop",
    "$rename",
    "$min",
    "$max",
    "$currentDate",
    "$setOnInsert",
    "$oid",
    "$date",
    "$type",
    "$regex",
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn value(&mut self, depth: usize) -> Value {
        let choice = if depth == 0 { self.below(8) } else { self.below(11) };
        match choice {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.below(7) as i64 - 3),
            3 => [json!(1.5), json!(i64::MAX), json!(u64::MAX), json!(-0.5), json!(1e300)]
                [self.below(5)]
            .clone(),
            4 => json!(["a", "b", "", "5f0000000000000000000aa1", "date"][self.below(5)]),
            5 => {
                let hex = ["5f0000000000000000000aa1", "xyz"][self.below(2)];
                json!({ "$oid": hex })
            }
            6 => {
                let millis = [json!(5), json!("x")][self.below(2)].clone();
                json!({ "$date": millis })
            }
            7 => json!([]),
            8 | 9 => Value::Object(self.object(depth - 1)),
            _ => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
        }
    }

    fn object(&mut self, depth: usize) -> Map<String, Value> {
        let mut map = Map::new();
        for _ in 0..self.below(4) {
            let key = KEYS[self.below(KEYS.len())].to_string();
            let value = self.value(depth);
            map.insert(key, value);
        }
        map
    }
}

#[test]
fn generated_inputs_never_panic() {
    let mut gen = Gen(0x9e37_79b9_7f4a_7c15);
    let mut parsed = [0usize; 4];
    for _ in 0..20_000 {
        let docs: Vec<Map<String, Value>> = (0..3).map(|_| gen.object(3)).collect();
        let spec = Value::Object(gen.object(4));
        if let Ok(filter) = Filter::parse(&spec) {
            parsed[0] += 1;
            for doc in &docs {
                assert_eq!(filter.matches(doc), filter.match_position(doc).is_some());
                let _ = (filter.equality_fields(), filter.id_equality());
            }
        }
        if let Ok(update) = Update::parse(&spec) {
            parsed[1] += 1;
            for doc in &docs {
                let position = Some(gen.below(3)).filter(|_| gen.below(2) == 0);
                let _ = update.apply(&mut doc.clone(), position);
                let _ = update.apply_insert(&mut doc.clone());
            }
        }
        if let Ok(projection) = Projection::parse(&spec) {
            parsed[2] += 1;
            docs.iter().for_each(|doc| drop(projection.apply(doc)));
        }
        if let Ok(sort) = Sort::parse(&spec) {
            parsed[3] += 1;
            assert_eq!(
                sort.compare(&docs[0], &docs[1]),
                sort.compare(&docs[1], &docs[0]).reverse()
            );
        }
        let (a, b) = (gen.value(3), gen.value(3));
        assert_eq!(compare_values(&a, &a), Ordering::Equal, "{a}");
        assert_eq!(compare_values(&a, &b), compare_values(&b, &a).reverse(), "{a} vs {b}");
    }
    // The generator reaches every parser's success path, not only its errors.
    assert!(parsed.iter().all(|&n| n > 100), "{parsed:?}");
}
