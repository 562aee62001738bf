//! The durable async-invocation queue: every accepted job is in sled (flushed) before the 202
//! goes out; workers run jobs through the `Invoker`, keep the result for the status resource
//! and hand callbacks to the delivery component. After a crash, `restore` runs every job that
//! had not finished and redelivers every callback that was not delivered: at least once, with
//! the invocation id so receivers can de-duplicate.
//!
//! Disk is bounded: a job's record (small JSON in sled, rewritten as the job progresses) is
//! kept apart from its request and result bodies (raw files, written once: sled keeps large
//! values in its leaf pages and rewrites a whole page of bodies at every insert), so a job
//! costs about its bodies on disk; finished jobs are swept with their bodies after the
//! retention period; and each space may keep at most so many jobs and body bytes (its quota).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use wasmfn_host_apis::state::{LeaseTable, StateTree};

use crate::delivery::{Deliverer, Delivery};
use crate::invoker::{Caller, Invocation, Invoker, Outcome, RequestData};

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    /// The function returned a response (whatever its status code).
    Succeeded,
    /// The platform could not get a response (exception, timeout, memory, …).
    Failed,
}

/// Where a job's callback stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    Pending,
    Delivered,
    /// Every attempt failed; the result stays readable at the status resource.
    CallbackFailed,
}

/// Bytes as base64 in the stored JSON.
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The request an async job runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// Kept apart from the record (see [`AsyncJobs`]); inline only in records of older versions.
    #[serde(default, with = "b64", skip_serializing_if = "Vec::is_empty")]
    pub body: Vec<u8>,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// A job's result: the function's response, or the platform's error body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobResult {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Kept apart from the record, as the request body.
    #[serde(default, with = "b64", skip_serializing_if = "Vec::is_empty")]
    pub body: Vec<u8>,
    pub duration_ms: u64,
}

/// One accepted asynchronous invocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: uuid::Uuid,
    pub space: String,
    pub function: String,
    pub entry: Option<String>,
    pub state: JobState,
    pub accepted_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Runs so far (more than one when a crash interrupted one).
    #[serde(default)]
    pub attempts: u32,
    pub callback_url: Option<String>,
    #[serde(default)]
    pub callback: Option<CallbackState>,
    /// Why the callback failed (the receiver's status, or why its address was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_error: Option<String>,
    pub request: JobRequest,
    #[serde(default)]
    pub result: Option<JobResult>,
    /// The caller identity the job runs with (from the API key); kept with the job.
    #[serde(default)]
    pub caller: Caller,
    /// The trigger recorded for the run (`async` when none: an async-invoke call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Bytes of the bodies stored apart from the record (counted in the space's quota).
    #[serde(default)]
    pub stored_bytes: u64,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the async queue is full ({limit} jobs waiting); retry later")]
    QueueFull { limit: usize },
    #[error(
        "space '{space}' keeps {what} of async invocations, its quota; retry once older \
         results are removed ({retention} after they finish)"
    )]
    SpaceQuota { space: String, what: String, retention: String },
    #[error("the job store failed: {0}")]
    Store(String),
}

/// Settings of the async queue.
#[derive(Clone, Debug)]
pub struct AsyncOptions {
    /// Jobs run at once (separate from synchronous calls).
    pub concurrency: usize,
    /// Jobs waiting before new ones get 429.
    pub queue_limit: usize,
    /// How long a finished job (and its result) is kept after it finished and its callback
    /// ended.
    pub retention: Duration,
    /// Jobs a space may keep (waiting, running and finished but not yet swept).
    pub space_jobs: usize,
    /// Bytes of request and result bodies a space may keep.
    pub space_bytes: u64,
    /// In a cluster: how long a node's hold on a job lasts without renewal (renewed every third
    /// of it); a job of a node that stopped is taken over by another this long after.
    pub lease: Duration,
}

impl Default for AsyncOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            queue_limit: 10_000,
            retention: Duration::from_secs(7 * 24 * 3600),
            space_jobs: 10_000,
            space_bytes: 1 << 30,
            lease: Duration::from_secs(30),
        }
    }
}

/// What a space keeps in the job store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceUsage {
    pub jobs: usize,
    pub bytes: u64,
}

/// Takes `jobs` and `bytes` off a space's usage; a space with no jobs left is forgotten.
fn subtract(usage: &mut HashMap<String, SpaceUsage>, space: &str, jobs: usize, bytes: u64) {
    if let Some(used) = usage.get_mut(space) {
        used.jobs = used.jobs.saturating_sub(jobs);
        used.bytes = used.bytes.saturating_sub(bytes);
        if used.jobs == 0 {
            usage.remove(space);
        }
    }
}

/// Which body of a job.
#[derive(Clone, Copy, Debug)]
enum Body {
    Request,
    Result,
}

/// The jobs' bodies, one file each (`<id>.request`, `<id>.result`) in one directory. A body is
/// written to a temporary name, synced and renamed before its record names it.
#[derive(Debug)]
pub struct BodyFiles {
    dir: std::path::PathBuf,
}

impl BodyFiles {
    /// The body files in `dir` (created, private to the server's user).
    pub fn open(dir: std::path::PathBuf) -> anyhow::Result<Self> {
        crate::private_files::create_private_dir(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, id: uuid::Uuid, body: Body) -> std::path::PathBuf {
        let suffix = match body {
            Body::Request => "request",
            Body::Result => "result",
        };
        self.dir.join(format!("{id}.{suffix}"))
    }

    fn write(&self, id: uuid::Uuid, body: Body, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(id, body);
        let partial = path.with_extension("partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// The body, empty when there is none.
    fn read(&self, id: uuid::Uuid, body: Body) -> std::io::Result<Vec<u8>> {
        match std::fs::read(self.path(id, body)) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        }
    }

    fn remove(&self, id: uuid::Uuid) {
        for body in [Body::Request, Body::Result] {
            let _ = std::fs::remove_file(self.path(id, body));
        }
    }

    /// Removes the files no record names (a crash between writing a body and its record, or
    /// during a sweep), and partial writes.
    fn remove_orphans(&self, known: &std::collections::HashSet<uuid::Uuid>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.split('.').next().and_then(|id| uuid::Uuid::parse_str(id).ok());
            let orphan = name.ends_with(".partial") || id.is_none_or(|id| !known.contains(&id));
            if orphan && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Where the bodies are: files of this node, or a tree shared by the nodes of a cluster (so
/// that any node answers the status resource and can take a job over).
#[derive(Debug)]
enum Bodies {
    Files(BodyFiles),
    Shared(StateTree),
}

impl Bodies {
    fn key(id: uuid::Uuid, body: Body) -> Vec<u8> {
        let mut key = id.as_bytes().to_vec();
        key.push(match body {
            Body::Request => b'q',
            Body::Result => b'r',
        });
        key
    }

    fn write(&self, id: uuid::Uuid, body: Body, bytes: &[u8]) -> Result<(), JobError> {
        match self {
            Self::Files(files) => files.write(id, body, bytes).map_err(store_error),
            Self::Shared(tree) => tree.insert(Self::key(id, body), bytes).map_err(store_error),
        }
    }

    fn read(&self, id: uuid::Uuid, body: Body) -> Result<Vec<u8>, JobError> {
        match self {
            Self::Files(files) => files.read(id, body).map_err(store_error),
            Self::Shared(tree) => {
                Ok(tree.get(Self::key(id, body)).map_err(store_error)?.unwrap_or_default())
            }
        }
    }

    fn remove(&self, id: uuid::Uuid) {
        match self {
            Self::Files(files) => files.remove(id),
            Self::Shared(tree) => {
                let keys = [Body::Request, Body::Result].map(|b| (Self::key(id, b), None));
                let _ = tree.apply(keys.to_vec());
            }
        }
    }

    fn remove_orphans(&self, known: &std::collections::HashSet<uuid::Uuid>) -> usize {
        match self {
            Self::Files(files) => files.remove_orphans(known),
            // Other nodes write bodies before their records: no node can tell an orphan from a
            // body whose record is being written. Orphans of a crash stay (bounded by the
            // request size limit).
            Self::Shared(_) => 0,
        }
    }
}

fn store_error(error: impl std::fmt::Display) -> JobError {
    JobError::Store(error.to_string())
}

/// The cluster side of a node's queue: who runs each unfinished job of the shared queue, and
/// until when ([`LeaseTable`], `wasmfn_leases` in PostgreSQL). A node takes the lease of each job
/// it accepts and holds it until the job's callback ended; it renews its leases every third of
/// [`AsyncOptions::lease`] (its heartbeat) and then claims leases of other nodes that were not
/// renewed in time (`FOR UPDATE SKIP LOCKED`, so each by one node), running those jobs again or
/// delivering their callbacks again: at least once, as after a crash.
#[derive(Debug)]
struct ClusterQueue {
    leases: Arc<dyn LeaseTable>,
    /// This node's name in leases (its `--node-id`, else random per process).
    node: String,
    /// The jobs this node holds leases for.
    owned: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
}

/// Leases claimed per statement when taking over; a node claims until fewer come back, at most
/// this many times per round.
const CLAIM_BATCH: usize = 256;
const CLAIM_ROUNDS: usize = 8;

/// The trees of a cluster's shared queue.
#[derive(Debug)]
pub struct SharedTrees {
    /// Job records, by id.
    pub records: StateTree,
    /// Request and result bodies.
    pub bodies: StateTree,
    /// Who runs each unfinished job.
    pub leases: Arc<dyn LeaseTable>,
}

/// The async jobs of a node.
pub struct AsyncJobs {
    /// Job records (JSON, without bodies), by id.
    tree: StateTree,
    /// Request and result bodies.
    bodies: Bodies,
    /// The shared queue's leases, when the node is one of a cluster.
    cluster: Option<ClusterQueue>,
    /// Jobs and body bytes kept per space.
    usage: std::sync::Mutex<HashMap<String, SpaceUsage>>,
    invoker: Invoker,
    deliverer: Arc<Deliverer>,
    options: AsyncOptions,
    waiting: AtomicUsize,
    /// The jobs in this node's line (sent, not yet taken by a worker): a job taken over again
    /// while it waits here is not queued a second time.
    in_line: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
    sender: mpsc::UnboundedSender<uuid::Uuid>,
    receiver: AsyncMutex<mpsc::UnboundedReceiver<uuid::Uuid>>,
    /// Serialises read-modify-write of one job's record.
    write: std::sync::Mutex<()>,
}

impl std::fmt::Debug for AsyncJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncJobs").field("options", &self.options).finish_non_exhaustive()
    }
}

impl AsyncJobs {
    pub fn new(
        tree: StateTree,
        bodies: BodyFiles,
        invoker: Invoker,
        deliverer: Arc<Deliverer>,
        options: AsyncOptions,
    ) -> Arc<Self> {
        Self::build(tree, Bodies::Files(bodies), None, invoker, deliverer, options)
    }

    /// The queue of a node of a cluster: records, bodies and leases in trees shared by the
    /// nodes, so any node answers the status resource and jobs of a node that died are taken
    /// over by the others (see [`Lease`]). `node` names this node in leases.
    pub fn shared(
        trees: SharedTrees,
        node: String,
        invoker: Invoker,
        deliverer: Arc<Deliverer>,
        options: AsyncOptions,
    ) -> Arc<Self> {
        let cluster =
            ClusterQueue { leases: trees.leases, node, owned: std::sync::Mutex::default() };
        Self::build(
            trees.records,
            Bodies::Shared(trees.bodies),
            Some(cluster),
            invoker,
            deliverer,
            options,
        )
    }

    fn build(
        tree: StateTree,
        bodies: Bodies,
        cluster: Option<ClusterQueue>,
        invoker: Invoker,
        deliverer: Arc<Deliverer>,
        options: AsyncOptions,
    ) -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        Arc::new(Self {
            tree,
            bodies,
            cluster,
            usage: std::sync::Mutex::new(HashMap::new()),
            invoker,
            deliverer,
            options,
            waiting: AtomicUsize::new(0),
            in_line: std::sync::Mutex::default(),
            sender,
            receiver: AsyncMutex::new(receiver),
            write: std::sync::Mutex::new(()),
        })
    }

    /// Stores the job durably, then queues it. Only after this returns may the caller hear 202.
    pub async fn accept(self: &Arc<Self>, mut job: Job) -> Result<Job, JobError> {
        let limit = self.options.queue_limit;
        // Reserve a place first, so concurrent requests cannot overshoot the limit.
        let reserved = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| (w < limit).then_some(w + 1));
        if reserved.is_err() {
            return Err(JobError::QueueFull { limit });
        }
        job.stored_bytes = job.request.body.len() as u64;
        if let Err(error) = self.reserve(&job.space, job.stored_bytes) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(error);
        }
        let (space, bytes) = (job.space.clone(), job.stored_bytes);
        // The store is written off the async workers: with PostgreSQL each write is a round
        // trip the thread waits for.
        let stored = self
            .blocking(move |jobs| {
                jobs.save_new(&job)?;
                jobs.take_lease(job.id)?;
                jobs.tree.flush().map_err(store_error)?;
                Ok(job)
            })
            .await
            .and_then(|stored| stored);
        match stored {
            Ok(job) => {
                self.send(job.id);
                Ok(job)
            }
            Err(error) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                self.release(&space, 1, bytes);
                Err(error)
            }
        }
    }

    /// Runs `work` (reads and writes of the store) on the blocking threads.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&AsyncJobs) -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let jobs = self.clone();
        tokio::task::spawn_blocking(move || work(&jobs)).await.map_err(store_error)
    }

    /// [`AsyncJobs::get`] off the async workers (the status resource).
    pub async fn fetch(self: &Arc<Self>, id: uuid::Uuid) -> Result<Option<Job>, JobError> {
        self.blocking(move |jobs| jobs.get(id)).await?
    }

    /// Counts a new job of `bytes` against its space's quota, or refuses it.
    fn reserve(&self, space: &str, bytes: u64) -> Result<(), JobError> {
        let mut usage = self.usage.lock().expect("async usage lock");
        let used = usage.get(space).copied().unwrap_or_default();
        // A refused space gets no entry: /metrics lists the spaces that keep jobs.
        let what = if used.jobs >= self.options.space_jobs {
            format!("{} jobs", self.options.space_jobs)
        } else if used.bytes.saturating_add(bytes) > self.options.space_bytes {
            format!("{} bytes of bodies", self.options.space_bytes)
        } else {
            let used = usage.entry(space.to_string()).or_default();
            used.jobs += 1;
            used.bytes += bytes;
            return Ok(());
        };
        Err(JobError::SpaceQuota {
            space: space.to_string(),
            what,
            retention: humantime::format_duration(self.options.retention).to_string(),
        })
    }

    fn release(&self, space: &str, jobs: usize, bytes: u64) {
        subtract(&mut self.usage.lock().expect("async usage lock"), space, jobs, bytes);
    }

    /// Jobs and body bytes each space keeps (for `/metrics`).
    pub fn usage(&self) -> Vec<(String, SpaceUsage)> {
        let usage = self.usage.lock().expect("async usage lock");
        let mut all: Vec<_> = usage.iter().map(|(space, used)| (space.clone(), *used)).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Queues job `id` unless it already waits in this node's line.
    fn enqueue(&self, id: uuid::Uuid) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if !self.send(id) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Puts `id` in the line for a worker (its place in `waiting` already counted); false when
    /// it is there already.
    fn send(&self, id: uuid::Uuid) -> bool {
        if !self.in_line.lock().expect("jobs in line").insert(id) {
            return false;
        }
        // The receiver lives as long as `self`.
        let _ = self.sender.send(id);
        true
    }

    /// A worker took `id` from the line.
    fn taken(&self, id: uuid::Uuid) {
        self.in_line.lock().expect("jobs in line").remove(&id);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Jobs waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// A job with its bodies (the status resource, a run, a callback).
    pub fn get(&self, id: uuid::Uuid) -> Result<Option<Job>, JobError> {
        let Some(mut job) = self.record(id)? else { return Ok(None) };
        if job.request.body.is_empty() {
            job.request.body = self.bodies.read(id, Body::Request)?;
        }
        if let Some(result) = job.result.as_mut().filter(|r| r.body.is_empty()) {
            result.body = self.bodies.read(id, Body::Result)?;
        }
        Ok(Some(job))
    }

    /// A job's record, without the bodies kept apart.
    fn record(&self, id: uuid::Uuid) -> Result<Option<Job>, JobError> {
        match self.tree.get(id.as_bytes()).map_err(|e| JobError::Store(e.to_string()))? {
            Some(value) => {
                serde_json::from_slice(&value).map(Some).map_err(|e| JobError::Store(e.to_string()))
            }
            None => Ok(None),
        }
    }

    /// Stores a new job: its request body apart, then its record.
    fn save_new(&self, job: &Job) -> Result<(), JobError> {
        self.bodies.write(job.id, Body::Request, &job.request.body)?;
        let mut record = job.clone();
        record.request.body = Vec::new();
        self.save(&record)
    }

    fn save(&self, job: &Job) -> Result<(), JobError> {
        let value = serde_json::to_vec(job).expect("jobs serialise");
        self.tree.insert(job.id.as_bytes(), &value).map_err(|e| JobError::Store(e.to_string()))?;
        Ok(())
    }

    /// Changes a stored job's record and flushes it; a result body the change sets is stored
    /// apart (once). Returns the record, without bodies.
    fn update(&self, id: uuid::Uuid, change: impl FnOnce(&mut Job)) -> Option<Job> {
        let _guard = self.write.lock().expect("job write lock");
        let mut job = self.record(id).ok().flatten()?;
        change(&mut job);
        let mut added = 0;
        let saved = (|| {
            if let Some(result) = job.result.as_mut().filter(|r| !r.body.is_empty()) {
                let body = std::mem::take(&mut result.body);
                added = body.len() as u64;
                self.bodies.write(id, Body::Result, &body)?;
                job.stored_bytes += added;
            }
            self.save(&job)?;
            self.tree.flush().map_err(|e| JobError::Store(e.to_string()))
        })();
        match saved {
            Ok(()) if added > 0 => {
                let mut usage = self.usage.lock().expect("async usage lock");
                usage.entry(job.space.clone()).or_default().bytes += added;
            }
            Ok(()) => {}
            Err(error) => {
                tracing::error!(invocation_id = %id, %error, "could not record an async job's progress");
            }
        }
        Some(job)
    }

    /// Removes the finished jobs whose callback has ended (delivered or failed, or none) and
    /// that finished more than the retention period before `now`, with their bodies. Returns
    /// how many were removed.
    pub fn sweep(&self, now: chrono::DateTime<Utc>) -> usize {
        // A retention too long to subtract from `now` (`--async-retention 1000000y`) keeps all.
        let cutoff = chrono::Duration::from_std(self.options.retention)
            .ok()
            .and_then(|retention| now.checked_sub_signed(retention));
        let Some(cutoff) = cutoff else { return 0 };
        let mut expired = Vec::new();
        for entry in self.tree.iter() {
            let Ok((_, value)) = entry else { continue };
            let Ok(job) = serde_json::from_slice::<Job>(&value) else { continue };
            let finished = matches!(job.state, JobState::Succeeded | JobState::Failed)
                && job.callback != Some(CallbackState::Pending);
            let old = job
                .finished_at
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_some_and(|at| at < cutoff);
            if finished && old {
                expired.push(job);
            }
        }
        let _guard = self.write.lock().expect("job write lock");
        let mut removed = 0;
        for job in expired {
            let size = self.stored_size(&job);
            // The record and its count go together: a scrape never sees one without the other.
            let mut usage = self.usage.lock().expect("async usage lock");
            if self.tree.remove(job.id.as_bytes()).is_ok() {
                subtract(&mut usage, &job.space, 1, size);
                drop(usage);
                self.bodies.remove(job.id);
                removed += 1;
            }
        }
        removed
    }

    /// The bytes a record counts for in its space's usage (the bodies of records written by
    /// older versions are inline).
    fn stored_size(&self, job: &Job) -> u64 {
        let inline = job.request.body.len() + job.result.as_ref().map_or(0, |r| r.body.len());
        job.stored_bytes + inline as u64
    }

    /// Sweeps at start and then every `retention / 4` (at most every minute) until `stop`.
    async fn sweep_periodically(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every =
            (self.options.retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        loop {
            let jobs = self.clone();
            let removed =
                tokio::task::spawn_blocking(move || jobs.sweep(Utc::now())).await.unwrap_or(0);
            if removed > 0 {
                tracing::info!(removed, "swept finished async invocations past their retention");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// After a restart: queues every job that had not finished and redelivers every pending
    /// callback. Returns (jobs requeued, callbacks redelivered).
    pub fn restore(self: &Arc<Self>) -> Result<(usize, usize), JobError> {
        let (mut requeued, mut redelivered) = (0, 0);
        let mut known = std::collections::HashSet::new();
        for entry in self.tree.iter() {
            let (key, value) = entry.map_err(|e| JobError::Store(e.to_string()))?;
            if let Ok(id) = uuid::Uuid::from_slice(&key) {
                known.insert(id);
            }
            let Ok(job) = serde_json::from_slice::<Job>(&value) else { continue };
            {
                let mut usage = self.usage.lock().expect("async usage lock");
                let used = usage.entry(job.space.clone()).or_default();
                used.jobs += 1;
                used.bytes += self.stored_size(&job);
            }
            if self.cluster.is_some() {
                // Leases say who runs what: see below.
                continue;
            }
            match job.state {
                JobState::Queued | JobState::Running => {
                    self.enqueue(job.id);
                    requeued += 1;
                }
                _ if job.callback == Some(CallbackState::Pending) => {
                    self.deliver(job.id);
                    redelivered += 1;
                }
                _ => {}
            }
        }
        if let Some(cluster) = &self.cluster {
            // The jobs this node held before it stopped: claimable at once, by this node's
            // lease keeper or another node's, instead of when their leases would end.
            let expired = cluster.leases.expire(&cluster.node, None).map_err(store_error)?;
            if expired > 0 {
                tracing::info!(expired, "async jobs held before a restart are claimable again");
            }
        }
        let orphans = self.bodies.remove_orphans(&known);
        if orphans > 0 {
            tracing::info!(orphans, "removed async bodies no job names (left by a crash)");
        }
        Ok((requeued, redelivered))
    }

    /// Starts the workers; they stop (finishing their job) when `stop` turns true.
    pub fn start(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let sweeper = tokio::spawn(self.clone().sweep_periodically(stop.clone()));
        let mut tasks: Vec<_> = (0..self.options.concurrency.max(1))
            .map(|_| {
                let (jobs, mut stop) = (self.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        let next = {
                            let mut receiver = jobs.receiver.lock().await;
                            tokio::select! {
                                id = receiver.recv() => id,
                                _ = stop.changed() => None,
                            }
                        };
                        let Some(id) = next else { return };
                        jobs.taken(id);
                        jobs.run(id).await;
                    }
                })
            })
            .collect();
        tasks.push(sweeper);
        if self.cluster.is_some() {
            tasks.push(tokio::spawn(self.clone().keep_leases(stop)));
        }
        tasks
    }

    /// Takes the lease of new job `id` for this node.
    fn take_lease(&self, id: uuid::Uuid) -> Result<(), JobError> {
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let taken = cluster
            .leases
            .take(id.as_bytes(), &cluster.node, self.lease_end())
            .map_err(store_error)?;
        if !taken {
            return Err(JobError::Store("another node holds this job".into()));
        }
        cluster.owned.lock().expect("owned jobs").insert(id);
        Ok(())
    }

    fn lease_end(&self) -> i64 {
        Utc::now().timestamp_millis() + self.options.lease.as_millis() as i64
    }

    /// Gives up the lease of a job whose work is done (finished, callback ended).
    fn release_lease(&self, id: uuid::Uuid) {
        let Some(cluster) = &self.cluster else { return };
        cluster.owned.lock().expect("owned jobs").remove(&id);
        if let Err(error) = cluster.leases.release(id.as_bytes(), &cluster.node) {
            // It expires and another node finds the job done.
            tracing::warn!(invocation_id = %id, %error, "could not release an async job's lease");
        }
    }

    /// Every third of the lease period until `stop`: renews this node's leases and takes over
    /// the expired leases of other nodes (and its own from before a restart).
    async fn keep_leases(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = (self.options.lease / 3).max(Duration::from_millis(100));
        loop {
            let jobs = self.clone();
            let _ = tokio::task::spawn_blocking(move || jobs.renew_and_take_over()).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    fn renew_and_take_over(self: &Arc<Self>) {
        let Some(cluster) = &self.cluster else { return };
        // The heartbeat: this node's leases extended; those another node claimed meanwhile
        // (this node was too slow to renew them) are no longer this node's to finish.
        let owned: Vec<uuid::Uuid> =
            cluster.owned.lock().expect("owned jobs").iter().copied().collect();
        let ids: Vec<Vec<u8>> = owned.iter().map(|id| id.as_bytes().to_vec()).collect();
        match cluster.leases.renew(&cluster.node, &ids, self.lease_end()) {
            Ok(held) => {
                let held: std::collections::HashSet<Vec<u8>> = held.into_iter().collect();
                for id in owned.iter().filter(|id| !held.contains(id.as_bytes().as_slice())) {
                    tracing::warn!(invocation_id = %id, "lost the lease of an async job");
                    cluster.owned.lock().expect("owned jobs").remove(id);
                }
            }
            Err(error) => tracing::warn!(%error, "could not renew the async jobs' leases"),
        }
        for _ in 0..CLAIM_ROUNDS {
            let now_ms = Utc::now().timestamp_millis();
            let claimed = match cluster.leases.claim_expired(
                &cluster.node,
                now_ms,
                self.lease_end(),
                CLAIM_BATCH,
            ) {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "could not claim expired async job leases");
                    return;
                }
            };
            let full = claimed.len() == CLAIM_BATCH;
            let mut given_back = Vec::new();
            for (key, from) in claimed {
                let Ok(id) = uuid::Uuid::from_slice(&key) else { continue };
                if !self.serves(id) {
                    given_back.push(key);
                    continue;
                }
                cluster.owned.lock().expect("owned jobs").insert(id);
                tracing::info!(invocation_id = %id, %from,
                    "async job taken over (its node stopped renewing it)");
                self.resume(id);
            }
            if !given_back.is_empty() {
                // Not this node's to run (it does not serve the function yet): left expired
                // for another node, or for this one once it serves the function.
                if let Err(error) = cluster.leases.expire(&cluster.node, Some(&given_back)) {
                    tracing::warn!(%error, "could not give back async job leases");
                }
                return;
            }
            if !full {
                return;
            }
        }
    }

    /// Whether this node can carry on with job `id`: it serves the job's function (a node
    /// that has not loaded it yet, just started or still compiling a deploy, leaves the job to
    /// another node or to its next round), or the job only has a callback left to deliver.
    fn serves(&self, id: uuid::Uuid) -> bool {
        match self.record(id) {
            Ok(Some(job)) => {
                !matches!(job.state, JobState::Queued | JobState::Running)
                    || self.invoker.registry().get(&job.space, &job.function).is_ok()
            }
            // Gone: taking the lease lets `resume` release it.
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Carries on with a job this node just took over: runs it again, or delivers its
    /// callback again.
    fn resume(self: &Arc<Self>, id: uuid::Uuid) {
        match self.record(id) {
            Ok(Some(job)) => match job.state {
                JobState::Queued | JobState::Running => self.enqueue(id),
                _ if job.callback == Some(CallbackState::Pending) => self.deliver(id),
                _ => self.release_lease(id),
            },
            // Swept meanwhile.
            Ok(None) => self.release_lease(id),
            Err(error) => tracing::error!(invocation_id = %id, %error, "reading a taken-over job"),
        }
    }

    async fn run(self: &Arc<Self>, id: uuid::Uuid) {
        let started = self.blocking(move |jobs| {
            // A job can come to this node's workers twice: taken over again (its lease ran
            // out while it ran here, or while another node held it) and re-queued. By the time
            // the second turn comes, the first may have finished: its record then stays as it
            // ended, instead of going back to "running" for a run nobody needs (seen in
            // tests/cluster.rs: a delivered job shown running again).
            let mut fresh = false;
            let started = jobs.update(id, |job| {
                if matches!(job.state, JobState::Queued | JobState::Running) {
                    job.state = JobState::Running;
                    job.started_at = Some(now());
                    job.attempts += 1;
                    fresh = true;
                }
            });
            // The job with its bodies, read only for a run.
            started.map(|_| fresh.then(|| jobs.get(id)))
        });
        let job = match started.await {
            Ok(Some(None)) => {
                tracing::debug!(invocation_id = %id, "an async job queued twice had ended already");
                return;
            }
            Ok(Some(Some(Ok(Some(job))))) => job,
            Ok(None) => {
                tracing::error!(invocation_id = %id, "an async job vanished from the store");
                return;
            }
            _ => {
                tracing::error!(invocation_id = %id, "an async job's request could not be read");
                return;
            }
        };
        let outcome = self.invoker.invoke(invocation(&job)).await;
        let result = job_result(&outcome);
        let succeeded = outcome.result.is_ok();
        let finished = self.blocking(move |jobs| {
            let job = jobs.update(id, |job| {
                job.state = if succeeded { JobState::Succeeded } else { JobState::Failed };
                job.finished_at = Some(now());
                job.result = Some(result);
                if job.callback_url.is_some() {
                    job.callback = Some(CallbackState::Pending);
                }
            })?;
            if job.callback_url.is_none() {
                jobs.release_lease(id);
                return None;
            }
            Some(())
        });
        if let Ok(Some(())) = finished.await {
            self.deliver(id);
        }
    }

    /// Delivers a finished job's callback in the background and records how it ended.
    fn deliver(self: &Arc<Self>, id: uuid::Uuid) {
        let jobs = self.clone();
        tokio::spawn(async move {
            // The record has no bodies: read the result's.
            let job = match jobs.blocking(move |jobs| jobs.get(id)).await {
                Ok(Ok(Some(job))) => job,
                _ => {
                    tracing::error!(invocation_id = %id, "an async job's result could not be read");
                    return;
                }
            };
            jobs.deliver_callback(job).await;
        });
    }

    async fn deliver_callback(self: &Arc<Self>, job: Job) {
        let (Some(url), Some(result)) = (&job.callback_url, &job.result) else { return };
        let Ok(url) = url::Url::parse(url) else { return };
        let headers = job.request.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
        let depth = crate::delivery::request_depth(headers).saturating_add(1);
        let delivery = Delivery::callback(
            format!("async:{}/{}", job.space, job.function),
            job.id,
            url,
            result.status,
            &result.headers,
            bytes::Bytes::from(result.body.clone()),
            depth,
        );
        let id = job.id;
        let record = self.deliverer.deliver(delivery).await;
        let state =
            if record.delivered { CallbackState::Delivered } else { CallbackState::CallbackFailed };
        let _ = self
            .blocking(move |jobs| {
                jobs.update(id, |job| {
                    job.callback = Some(state);
                    job.callback_error = record.error;
                });
                jobs.release_lease(id);
            })
            .await;
    }
}

/// The invocation a job runs.
fn invocation(job: &Job) -> Invocation {
    let request = &job.request;
    Invocation {
        space: job.space.clone(),
        function: job.function.clone(),
        entry: job.entry.clone(),
        arguments: request.arguments.clone().into(),
        request: RequestData {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            body: bytes::Bytes::from(request.body.clone()),
        },
        trigger: job.trigger.clone().unwrap_or_else(|| "async".into()),
        caller: job.caller.clone(),
        id: Some(job.id),
        ..Invocation::default()
    }
}

fn job_result(outcome: &Outcome) -> JobResult {
    let duration_ms = outcome.timing.total.as_millis() as u64;
    match &outcome.result {
        Ok(response) => JobResult {
            status: response.status,
            headers: response.headers.clone(),
            body: response.body.to_vec(),
            duration_ms,
        },
        Err(error) => JobResult {
            status: error.status().as_u16(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: error.body().to_string().into_bytes(),
            duration_ms,
        },
    }
}

/// The body as text for the status resource when it is UTF-8, else base64.
pub fn body_for_display(body: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::json!({ "text": text }),
        Err(_) => serde_json::json!({
            "base64": base64::engine::general_purpose::STANDARD.encode(body)
        }),
    }
}
