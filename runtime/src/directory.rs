//! Who serves: each server writes a record of itself (id, address, wasmfn version, when it
//! started, its load and the versions it serves) to the state store every few seconds, and
//! removes it when it stops. With state shared by a cluster (`--state`), every server sees every
//! other one: `GET /admin/nodes` lists them, and a function's listing says which servers serve
//! which of its versions. A record not renewed for [`ALIVE_FOR`] is shown as gone.
//!
//! A server that finds another gone (its record stale, or marked as left when it stopped)
//! claims it, once in the cluster (compare-and-swap of the record), and takes over what the
//! gone server left with the MQTT broker: the hook given to [`NodeDirectory::on_gone`] runs
//! for every server this one claimed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use wasmfn_host_apis::state::StateTree;

use crate::registry::Registry;
use crate::running::RunSlots;

/// How often a server renews its record.
const BEAT: Duration = Duration::from_secs(5);
/// A record older than this is of a server that stopped without saying so.
const ALIVE_FOR: chrono::Duration = chrono::Duration::seconds(20);
/// Records of servers gone for longer than this are removed.
const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// A version a server serves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Served {
    pub space: String,
    pub name: String,
    pub version: String,
}

/// A server's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// Where it listens (`http://<address>`).
    pub address: String,
    /// Its wasmfn version.
    pub version: String,
    pub started_at: String,
    pub seen_at: String,
    seen_ms: i64,
    /// Invocations running guest code now, and at most.
    pub running: usize,
    pub run_slots: usize,
    pub functions: Vec<Served>,
    /// It stopped and said so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left: bool,
    /// The server that took over what it left (its MQTT sessions), once it was gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_by: Option<String>,
}

impl NodeRecord {
    /// Whether the server still renews its record (and has not said it left), at `now_ms`.
    fn alive(&self, now_ms: i64) -> bool {
        now_ms - self.seen_ms <= ALIVE_FOR.num_milliseconds() && !self.left
    }
}

/// What a server does with another found gone: given its id.
pub type GoneHook = Box<dyn Fn(&str) + Send + Sync>;

/// A record as listed: with whether the server still renews it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub record: NodeRecord,
    pub alive: bool,
}

/// This server's entry in the directory, and the others'.
pub struct NodeDirectory {
    tree: StateTree,
    id: String,
    started_at: String,
    registry: Arc<Registry>,
    run_slots: Arc<RunSlots>,
    address: std::sync::Mutex<Option<String>>,
    gone: std::sync::Mutex<Option<Arc<GoneHook>>>,
}

impl std::fmt::Debug for NodeDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDirectory").field("id", &self.id).finish_non_exhaustive()
    }
}

impl NodeDirectory {
    pub fn new(
        tree: StateTree,
        id: String,
        registry: Arc<Registry>,
        run_slots: Arc<RunSlots>,
    ) -> Self {
        let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        Self {
            tree,
            id,
            started_at,
            registry,
            run_slots,
            address: Default::default(),
            gone: Default::default(),
        }
    }

    /// This server's id (its `--node-id`, else one made up at start).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs `hook` for every other server this one finds gone and claims (see the module).
    pub fn on_gone(&self, hook: GoneHook) {
        *self.gone.lock().expect("gone hook") = Some(Arc::new(hook));
    }

    /// Writes this server's record now.
    pub fn beat(&self) {
        self.write(false);
    }

    fn write(&self, left: bool) {
        let Some(address) = self.address.lock().expect("address").clone() else { return };
        let now = Utc::now();
        let functions = self
            .registry
            .list()
            .into_iter()
            .map(|f| Served { space: f.space, name: f.name, version: f.version })
            .collect();
        let record = NodeRecord {
            id: self.id.clone(),
            address,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at.clone(),
            seen_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            seen_ms: now.timestamp_millis(),
            running: self.run_slots.running(),
            run_slots: self.run_slots.size(),
            functions,
            left,
            taken_over_by: None,
        };
        let value = serde_json::to_vec(&record).expect("node records serialise");
        if let Err(error) = self.tree.insert(&self.id, value) {
            tracing::warn!(%error, "could not renew this server's record in the node directory");
        }
    }

    /// Every server's record, this one's first, then by id; records of servers gone for long
    /// are removed on the way.
    pub fn list(&self) -> Vec<NodeView> {
        let now_ms = Utc::now().timestamp_millis();
        let mut all = Vec::new();
        for entry in self.tree.iter() {
            let Ok((key, value)) = entry else { break };
            let Ok(record) = serde_json::from_slice::<NodeRecord>(&value) else { continue };
            let age = now_ms - record.seen_ms;
            if age > FORGET_AFTER.num_milliseconds() {
                let _ = self.tree.compare_and_swap(&key, Some(&value), None);
                continue;
            }
            let alive = record.alive(now_ms);
            all.push(NodeView { record, alive });
        }
        all.sort_by_key(|view| (view.record.id != self.id, view.record.id.clone()));
        all
    }

    /// Claims the records of the servers gone and not claimed yet (each by compare-and-swap,
    /// so by one server of the cluster); returns their ids. A server gone while it was taking
    /// over what another left hands that on too: a record claimed by a server now gone (its
    /// record stale, left or forgotten) is claimed again, so nothing a gone server left waits
    /// for one that will not come back. (Taking over twice is harmless: a drained session
    /// drains at once, and a compile is claimed by compare-and-swap.)
    pub fn claim_gone(&self) -> Vec<String> {
        let now_ms = Utc::now().timestamp_millis();
        let entries: Vec<(Vec<u8>, Vec<u8>, NodeRecord)> = self
            .tree
            .iter()
            .map_while(Result::ok)
            .filter_map(|(key, value)| {
                let record = serde_json::from_slice::<NodeRecord>(&value).ok()?;
                Some((key, value, record))
            })
            .collect();
        let alive: std::collections::HashSet<&str> = entries
            .iter()
            .filter(|(_, _, record)| record.alive(now_ms))
            .map(|(_, _, record)| record.id.as_str())
            .collect();
        let mut claimed = Vec::new();
        for (key, value, record) in &entries {
            let taker_alive = match record.taken_over_by.as_deref() {
                None => false,
                Some(taker) => taker == self.id || alive.contains(taker),
            };
            if record.id == self.id || taker_alive || alive.contains(record.id.as_str()) {
                continue;
            }
            let mut record = record.clone();
            let from = record.taken_over_by.replace(self.id.clone());
            let new = serde_json::to_vec(&record).expect("node records serialise");
            if let Ok(true) = self.tree.compare_and_swap(key, Some(value), Some(&new)) {
                match from {
                    None => tracing::info!(gone = %record.id,
                        "a server is gone; taking over what it left"),
                    Some(from) => tracing::info!(gone = %record.id, %from,
                        "the server taking over what a gone server left is gone too; \
                        taking it over again"),
                }
                claimed.push(record.id);
            }
        }
        claimed
    }

    /// Starts renewing the record of this server, reachable at `address`, until aborted.
    pub fn announce(self: &Arc<Self>, address: String) -> tokio::task::JoinHandle<()> {
        *self.address.lock().expect("address") = Some(address);
        let directory = self.clone();
        tokio::spawn(async move {
            loop {
                let beating = directory.clone();
                let claimed = tokio::task::spawn_blocking(move || {
                    beating.beat();
                    beating.claim_gone()
                })
                .await
                .unwrap_or_default();
                let hook = directory.gone.lock().expect("gone hook").clone();
                if let Some(hook) = hook {
                    for gone in claimed {
                        hook(&gone);
                    }
                }
                tokio::time::sleep(BEAT).await;
            }
        })
    }

    /// Marks this server's record as left (it stops): another server takes over what it
    /// leaves at once, without waiting [`ALIVE_FOR`]; the record goes after [`FORGET_AFTER`],
    /// or is renewed if the server comes back.
    pub fn leave(&self) {
        self.write(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmfn_host_apis::state::sled_tree;

    fn record(id: &str, seen_ms: i64, taken_over_by: Option<&str>) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            address: format!("http://{id}"),
            version: "test".into(),
            started_at: String::new(),
            seen_at: String::new(),
            seen_ms,
            running: 0,
            run_slots: 1,
            functions: Vec::new(),
            left: false,
            taken_over_by: taken_over_by.map(String::from),
        }
    }

    /// Server `b` finds: `x` gone and taken over by `a`, which is gone too; `y` gone and
    /// taken over by `c`, which is alive; `z` gone and claimed by nobody.
    #[test]
    fn a_gone_servers_leftovers_are_claimed_again_when_their_taker_is_gone_too() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = sled_tree::open(&db, "nodes").unwrap();
        let now = Utc::now().timestamp_millis();
        let stale = now - ALIVE_FOR.num_milliseconds() - 1_000;
        for record in [
            record("a", stale, None),
            record("x", stale, Some("a")),
            record("c", now, None),
            record("y", stale, Some("c")),
            record("z", stale, None),
        ] {
            tree.insert(&record.id, serde_json::to_vec(&record).unwrap()).unwrap();
        }
        let b = NodeDirectory::new(tree.clone(), "b".into(), Default::default(), RunSlots::new(1));
        *b.address.lock().unwrap() = Some("http://b".into());
        b.beat();
        let mut claimed = b.claim_gone();
        claimed.sort();
        assert_eq!(claimed, ["a", "x", "z"]);
        let taker = |id: &str| {
            let value = tree.get(id).unwrap().unwrap();
            serde_json::from_slice::<NodeRecord>(&value).unwrap().taken_over_by
        };
        assert_eq!(taker("x").as_deref(), Some("b"));
        assert_eq!(taker("y").as_deref(), Some("c"));
        // Claimed once: another round (or another server) finds nothing left.
        assert!(b.claim_gone().is_empty());
        let d = NodeDirectory::new(tree, "d".into(), Default::default(), RunSlots::new(1));
        assert!(d.claim_gone().is_empty(), "b is alive: what it claimed stays its own");
    }
}
