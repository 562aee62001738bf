//! ObjectIds made by the host (for documents inserted without an `_id`), in MongoDB's layout:
//! a 4-byte big-endian timestamp, 5 random bytes fixed per process and a 3-byte counter.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// A 12-byte MongoDB ObjectId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId([u8; 12]);

struct Process {
    random: [u8; 5],
    counter: AtomicU32,
}

fn process() -> &'static Process {
    static PROCESS: OnceLock<Process> = OnceLock::new();
    PROCESS.get_or_init(|| Process {
        random: rand::random(),
        counter: AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff),
    })
}

impl ObjectId {
    pub fn new() -> Self {
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let process = process();
        let count = process.counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&(seconds as u32).to_be_bytes());
        bytes[4..9].copy_from_slice(&process.random);
        bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        Self(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Extended JSON: `{"$oid": "<hex>"}`.
    pub fn to_json(&self) -> Value {
        json!({ "$oid": self.to_hex() })
    }
}

impl Default for ObjectId {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_ordered_and_carry_the_time() {
        let a = ObjectId::new();
        let b = ObjectId::new();
        assert_ne!(a, b);
        assert_eq!(a.0[4..9], b.0[4..9], "same process part");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32;
        let stamp = u32::from_be_bytes(a.0[..4].try_into().unwrap());
        assert!(now.abs_diff(stamp) <= 1);
        assert_eq!(a.to_hex().len(), 24);
        assert_eq!(a.to_json()["$oid"], a.to_hex());
    }
}
