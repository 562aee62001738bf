//! The durable async-invocation queue: every accepted job is in sled (flushed) before the 202
//! goes out; workers run jobs through the `Invoker`, keep the result for the status resource
//! and hand callbacks to the delivery component. After a crash, `restore` runs every job that
//! had not finished and redelivers every callback that was not delivered: at least once, with
//! the invocation id so receivers can de-duplicate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};

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
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// A job's result: the function's response, or the platform's error body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobResult {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "b64")]
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
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the async queue is full ({limit} jobs waiting); retry later")]
    QueueFull { limit: usize },
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
}

impl Default for AsyncOptions {
    fn default() -> Self {
        Self { concurrency: 4, queue_limit: 10_000 }
    }
}

/// The async jobs of a node.
pub struct AsyncJobs {
    tree: sled::Tree,
    invoker: Invoker,
    deliverer: Arc<Deliverer>,
    options: AsyncOptions,
    waiting: AtomicUsize,
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
        tree: sled::Tree,
        invoker: Invoker,
        deliverer: Arc<Deliverer>,
        options: AsyncOptions,
    ) -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        Arc::new(Self {
            tree,
            invoker,
            deliverer,
            options,
            waiting: AtomicUsize::new(0),
            sender,
            receiver: AsyncMutex::new(receiver),
            write: std::sync::Mutex::new(()),
        })
    }

    /// Stores the job durably, then queues it. Only after this returns may the caller hear 202.
    pub async fn accept(&self, job: Job) -> Result<Job, JobError> {
        let limit = self.options.queue_limit;
        // Reserve a place first, so concurrent requests cannot overshoot the limit.
        let reserved = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| (w < limit).then_some(w + 1));
        if reserved.is_err() {
            return Err(JobError::QueueFull { limit });
        }
        let stored = match self.save(&job) {
            Ok(()) => self.tree.flush_async().await.map_err(|e| JobError::Store(e.to_string())),
            Err(error) => Err(error),
        };
        if let Err(error) = stored {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(error);
        }
        // The receiver lives as long as `self`.
        let _ = self.sender.send(job.id);
        Ok(job)
    }

    fn enqueue(&self, id: uuid::Uuid) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _ = self.sender.send(id);
    }

    /// Jobs waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn get(&self, id: uuid::Uuid) -> Result<Option<Job>, JobError> {
        match self.tree.get(id.as_bytes()).map_err(|e| JobError::Store(e.to_string()))? {
            Some(value) => {
                serde_json::from_slice(&value).map(Some).map_err(|e| JobError::Store(e.to_string()))
            }
            None => Ok(None),
        }
    }

    fn save(&self, job: &Job) -> Result<(), JobError> {
        let value = serde_json::to_vec(job).expect("jobs serialise");
        self.tree.insert(job.id.as_bytes(), value).map_err(|e| JobError::Store(e.to_string()))?;
        Ok(())
    }

    /// Changes a stored job and flushes it.
    fn update(&self, id: uuid::Uuid, change: impl FnOnce(&mut Job)) -> Option<Job> {
        let _guard = self.write.lock().expect("job write lock");
        let mut job = self.get(id).ok().flatten()?;
        change(&mut job);
        let saved = self.save(&job).and_then(|()| {
            self.tree.flush().map(|_| ()).map_err(|e| JobError::Store(e.to_string()))
        });
        if let Err(error) = saved {
            tracing::error!(invocation_id = %id, %error, "could not record an async job's progress");
        }
        Some(job)
    }

    /// After a restart: queues every job that had not finished and redelivers every pending
    /// callback. Returns (jobs requeued, callbacks redelivered).
    pub fn restore(self: &Arc<Self>) -> Result<(usize, usize), JobError> {
        let (mut requeued, mut redelivered) = (0, 0);
        for value in self.tree.iter().values() {
            let value = value.map_err(|e| JobError::Store(e.to_string()))?;
            let Ok(job) = serde_json::from_slice::<Job>(&value) else { continue };
            match job.state {
                JobState::Queued | JobState::Running => {
                    self.enqueue(job.id);
                    requeued += 1;
                }
                _ if job.callback == Some(CallbackState::Pending) => {
                    self.deliver(&job);
                    redelivered += 1;
                }
                _ => {}
            }
        }
        Ok((requeued, redelivered))
    }

    /// Starts the workers; they stop (finishing their job) when `stop` turns true.
    pub fn start(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.options.concurrency.max(1))
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
                        jobs.waiting.fetch_sub(1, Ordering::SeqCst);
                        jobs.run(id).await;
                    }
                })
            })
            .collect()
    }

    async fn run(self: &Arc<Self>, id: uuid::Uuid) {
        let Some(job) = self.update(id, |job| {
            job.state = JobState::Running;
            job.started_at = Some(now());
            job.attempts += 1;
        }) else {
            tracing::error!(invocation_id = %id, "an async job vanished from the store");
            return;
        };
        let outcome = self.invoker.invoke(invocation(&job)).await;
        let result = job_result(&outcome);
        let Some(job) = self.update(id, |job| {
            job.state = if outcome.result.is_ok() { JobState::Succeeded } else { JobState::Failed };
            job.finished_at = Some(now());
            job.result = Some(result);
            if job.callback_url.is_some() {
                job.callback = Some(CallbackState::Pending);
            }
        }) else {
            return;
        };
        if job.callback_url.is_some() {
            self.deliver(&job);
        }
    }

    /// Delivers a finished job's callback in the background and records how it ended.
    fn deliver(self: &Arc<Self>, job: &Job) {
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
        let (jobs, id) = (self.clone(), job.id);
        tokio::spawn(async move {
            let record = jobs.deliverer.deliver(delivery).await;
            let state = if record.delivered {
                CallbackState::Delivered
            } else {
                CallbackState::CallbackFailed
            };
            jobs.update(id, |job| {
                job.callback = Some(state);
                job.callback_error = record.error;
            });
        });
    }
}

/// The invocation a job runs.
fn invocation(job: &Job) -> Invocation {
    let request = &job.request;
    Invocation {
        space: job.space.clone(),
        function: job.function.clone(),
        entry: job.entry.clone(),
        arguments: request.arguments.clone(),
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
