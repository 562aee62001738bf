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
    /// so by one server of the cluster); returns their ids.
    pub fn claim_gone(&self) -> Vec<String> {
        let now_ms = Utc::now().timestamp_millis();
        let mut claimed = Vec::new();
        for entry in self.tree.iter() {
            let Ok((key, value)) = entry else { break };
            let Ok(mut record) = serde_json::from_slice::<NodeRecord>(&value) else { continue };
            if record.id == self.id || record.taken_over_by.is_some() || record.alive(now_ms) {
                continue;
            }
            record.taken_over_by = Some(self.id.clone());
            let new = serde_json::to_vec(&record).expect("node records serialise");
            if let Ok(true) = self.tree.compare_and_swap(&key, Some(&value), Some(&new)) {
                tracing::info!(gone = %record.id, "a server is gone; taking over what it left");
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
