//! The change hook: every committed document write is reported to the registered listeners, in
//! commit order, after the write is durable. The event triggers subscribe here.

use serde_json::Value;

use super::{CollectionRef, Document};

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Update,
    Delete,
}

impl ChangeKind {
    /// The event names and ids the platform uses (`STORAGE_INSERT` = 1000, ...).
    pub fn event(self) -> (&'static str, u32) {
        match self {
            Self::Insert => ("STORAGE_INSERT", 1000),
            Self::Update => ("STORAGE_UPDATE", 1001),
            Self::Delete => ("STORAGE_DELETE", 1002),
        }
    }
}

/// One committed write.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub kind: ChangeKind,
    pub collection: CollectionRef,
    /// The document's `_id`.
    pub id: Value,
    /// The document after the write; none for deletes.
    pub document: Option<Document>,
    /// The document before the write, so that a listener can compare a field's old and new
    /// value: for updates and replaces the stored document the write changed, for deletes the
    /// deleted document; none for inserts (upserts that inserted included).
    pub previous: Option<Document>,
}

/// Told about every committed write. Called on the writer's task: do little (hand the event to a
/// queue) and never block for long.
pub trait ChangeListener: Send + Sync + 'static {
    fn changed(&self, event: &ChangeEvent);
}

#[cfg(test)]
pub(crate) mod recording {
    use std::sync::Mutex;

    use super::*;

    /// A listener that keeps every event, for tests.
    #[derive(Default)]
    pub struct Recorder(pub Mutex<Vec<ChangeEvent>>);

    impl ChangeListener for Recorder {
        fn changed(&self, event: &ChangeEvent) {
            self.0.lock().unwrap().push(event.clone());
        }
    }
}
