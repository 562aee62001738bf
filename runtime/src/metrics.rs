//! Prometheus metrics at `/metrics` (OpenMetrics text): invocations by function, trigger and
//! status, duration, instantiate and queue-wait histograms, and, read at scrape time, active
//! functions, callers waiting for a concurrency slot, trigger status and queue depths, and what
//! each space keeps (async jobs, documents, objects) against its quotas.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::invoker::{Outcome, OutcomeObserver};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    space: String,
    function: String,
    /// The version that ran; empty when none did (no such function).
    version: String,
    trigger: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    space: String,
    function: String,
    /// The response's status class (`2xx`, ...) or `error` when the request failed.
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    space: String,
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpaceLabels {
    space: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    space: String,
    trigger: String,
    kind: String,
}

fn seconds_histogram() -> Histogram {
    // 0.25 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    invocations: Family<InvocationLabels, Counter>,
    outbound: Family<OutboundLabels, Counter>,
    outbound_bytes: Family<FunctionLabels, Counter>,
    duration: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    instantiate: Histogram,
    queued: Histogram,
    functions: Gauge,
    waiting: Family<FunctionLabels, Gauge>,
    running: Gauge,
    max_running: Gauge,
    trigger_up: Family<TriggerLabels, Gauge>,
    trigger_queue: Family<TriggerLabels, Gauge>,
    trigger_dropped: Family<TriggerLabels, Gauge>,
    async_jobs: Family<SpaceLabels, Gauge>,
    async_bytes: Family<SpaceLabels, Gauge>,
    storage: StorageGauges,
}

/// What each space keeps in the document store and object storage.
#[derive(Default)]
struct StorageGauges {
    documents: Family<SpaceLabels, Gauge>,
    document_bytes: Family<SpaceLabels, Gauge>,
    collections: Family<SpaceLabels, Gauge>,
    object_bytes: Family<SpaceLabels, Gauge>,
    objects: Family<SpaceLabels, Gauge>,
}

impl StorageGauges {
    fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        let described = [
            (
                "wasmfn_documents_stored",
                "Documents a space keeps in the (embedded) document store, against \
                 --space-documents",
                &gauges.documents,
            ),
            (
                "wasmfn_document_bytes_stored",
                "Bytes of stored JSON documents a space keeps, against --space-document-mib",
                &gauges.document_bytes,
            ),
            (
                "wasmfn_collections_stored",
                "Document collections a space has, against --space-collections",
                &gauges.collections,
            ),
            (
                "wasmfn_object_bytes_stored",
                "Bytes of objects a space keeps in object storage, against --space-object-mib",
                &gauges.object_bytes,
            ),
            (
                "wasmfn_objects_stored",
                "Objects a space keeps in object storage, against --space-objects",
                &gauges.objects,
            ),
        ];
        for (name, help, family) in described {
            registry.register(name, help, family.clone());
        }
        gauges
    }

    fn read(&self, capabilities: &crate::capabilities::Capabilities) {
        for family in [
            &self.documents,
            &self.document_bytes,
            &self.collections,
            &self.object_bytes,
            &self.objects,
        ] {
            family.clear();
        }
        for (space, used) in capabilities.documents.usage() {
            let labels = SpaceLabels { space };
            self.documents.get_or_create(&labels).set(used.documents as i64);
            self.document_bytes.get_or_create(&labels).set(used.bytes as i64);
            self.collections.get_or_create(&labels).set(used.collections as i64);
        }
        for (space, used) in capabilities.objects.usage() {
            let labels = SpaceLabels { space };
            self.object_bytes.get_or_create(&labels).set(used.bytes as i64);
            self.objects.get_or_create(&labels).set(used.objects as i64);
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let invocations = Family::<InvocationLabels, Counter>::default();
        registry.register(
            "wasmfn_invocations",
            "Finished invocations by space, function, trigger and HTTP status",
            invocations.clone(),
        );
        let outbound = Family::<OutboundLabels, Counter>::default();
        registry.register(
            "wasmfn_outbound_requests",
            "Functions' outbound HTTP(S) requests by space, function and result (status class or error)",
            outbound.clone(),
        );
        let outbound_bytes = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "wasmfn_outbound_response_bytes",
            "Bytes of outbound response bodies functions read",
            outbound_bytes.clone(),
        );
        let duration = Family::<FunctionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds_histogram,
        );
        registry.register(
            "wasmfn_invocation_duration_seconds",
            "Whole invocation time, queueing included",
            duration.clone(),
        );
        let instantiate = seconds_histogram();
        registry.register(
            "wasmfn_instantiate_seconds",
            "Time to create a fresh instance",
            instantiate.clone(),
        );
        let queued = seconds_histogram();
        registry.register(
            "wasmfn_queue_wait_seconds",
            "Time an invocation waited for its function's concurrency slot and a run slot",
            queued.clone(),
        );
        let functions = Gauge::default();
        registry.register(
            "wasmfn_functions_active",
            "Functions with an active version",
            functions.clone(),
        );
        let waiting = Family::<FunctionLabels, Gauge>::default();
        registry.register(
            "wasmfn_invocations_waiting",
            "Invocations waiting for a concurrency slot, by function",
            waiting.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "wasmfn_invocations_running",
            "Invocations holding one of the node's --max-running run slots",
            running.clone(),
        );
        let max_running = Gauge::default();
        registry.register(
            "wasmfn_max_running",
            "The node's run slots (--max-running)",
            max_running.clone(),
        );
        let trigger_up = Family::<TriggerLabels, Gauge>::default();
        registry.register(
            "wasmfn_trigger_up",
            "1 when a trigger is Running, 0 when Failed or connecting",
            trigger_up.clone(),
        );
        let trigger_queue = Family::<TriggerLabels, Gauge>::default();
        registry.register(
            "wasmfn_trigger_queue_depth",
            "Messages waiting in an MQTT trigger's queue",
            trigger_queue.clone(),
        );
        let trigger_dropped = Family::<TriggerLabels, Gauge>::default();
        registry.register(
            "wasmfn_trigger_dropped_messages",
            "QoS 0 messages an MQTT trigger dropped because its queue was full (since start)",
            trigger_dropped.clone(),
        );
        let async_jobs = Family::<SpaceLabels, Gauge>::default();
        registry.register(
            "wasmfn_async_jobs_stored",
            "Asynchronous invocations a space keeps (waiting, running, finished within the \
             retention), against --async-space-jobs",
            async_jobs.clone(),
        );
        let async_bytes = Family::<SpaceLabels, Gauge>::default();
        registry.register(
            "wasmfn_async_body_bytes_stored",
            "Request and result body bytes of the asynchronous invocations a space keeps, \
             against --async-space-mib",
            async_bytes.clone(),
        );
        let storage = StorageGauges::register(&mut registry);
        Arc::new(Self {
            registry: Mutex::new(registry),
            invocations,
            outbound,
            outbound_bytes,
            duration,
            instantiate,
            queued,
            functions,
            waiting,
            running,
            max_running,
            trigger_up,
            trigger_queue,
            trigger_dropped,
            async_jobs,
            async_bytes,
            storage,
        })
    }

    /// The text a scrape gets, with the scrape-time gauges read from `state`.
    pub fn render(&self, state: &Sources<'_>) -> String {
        let versions = state.registry.versions();
        self.functions.set(versions.len() as i64);
        self.running.set(state.run_slots.running() as i64);
        self.max_running.set(state.run_slots.size() as i64);
        self.waiting.clear();
        for version in &versions {
            let labels =
                FunctionLabels { space: version.space.clone(), function: version.name.clone() };
            self.waiting.get_or_create(&labels).set(version.waiting.load(Ordering::Relaxed) as i64);
        }
        for family in [&self.trigger_up, &self.trigger_queue, &self.trigger_dropped] {
            family.clear();
        }
        for view in state.mqtt.list(None) {
            let labels =
                TriggerLabels { space: view.space, trigger: view.name, kind: "mqtt".into() };
            let up = view.status.state == crate::triggers::mqtt::TriggerState::Running;
            self.trigger_up.get_or_create(&labels).set(i64::from(up));
            self.trigger_queue.get_or_create(&labels).set(view.status.queued as i64);
            self.trigger_dropped.get_or_create(&labels).set(view.status.dropped as i64);
        }
        for (space, trigger) in state.cron.names() {
            let labels = TriggerLabels { space, trigger, kind: "cron".into() };
            self.trigger_up.get_or_create(&labels).set(1);
        }
        self.async_jobs.clear();
        self.async_bytes.clear();
        for (space, used) in state.async_jobs.usage() {
            let labels = SpaceLabels { space };
            self.async_jobs.get_or_create(&labels).set(used.jobs as i64);
            self.async_bytes.get_or_create(&labels).set(used.bytes as i64);
        }
        if let Some(capabilities) = state.capabilities {
            self.storage.read(capabilities);
        }
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("encoding to a String cannot fail");
        text
    }
}

/// What the scrape-time gauges read: the node's parts, lent by the `/metrics` handler.
pub struct Sources<'a> {
    pub registry: &'a crate::registry::Registry,
    pub run_slots: &'a crate::running::RunSlots,
    pub mqtt: &'a crate::triggers::mqtt::MqttTriggers,
    pub cron: &'a crate::triggers::cron::CronTriggers,
    pub async_jobs: &'a crate::triggers::async_invoke::AsyncJobs,
    /// The document store and object storage, once opened.
    pub capabilities: Option<&'a crate::capabilities::Capabilities>,
}

impl OutcomeObserver for Metrics {
    fn observe(&self, outcome: &Outcome) {
        let labels = InvocationLabels {
            space: outcome.space.clone(),
            function: outcome.function.clone(),
            version: outcome.version.clone().unwrap_or_default(),
            trigger: outcome.trigger.clone(),
            status: outcome.status().to_string(),
        };
        self.invocations.get_or_create(&labels).inc();
        let function = FunctionLabels { space: labels.space, function: labels.function };
        for call in &outcome.outbound {
            let result = match call.status {
                Some(status) => format!("{}xx", status / 100),
                None => "error".into(),
            };
            let labels = OutboundLabels {
                space: function.space.clone(),
                function: function.function.clone(),
                result,
            };
            self.outbound.get_or_create(&labels).inc();
            self.outbound_bytes.get_or_create(&function).inc_by(call.bytes);
        }
        self.duration.get_or_create(&function).observe(outcome.timing.total.as_secs_f64());
        if !outcome.timing.instantiate.is_zero() {
            self.instantiate.observe(outcome.timing.instantiate.as_secs_f64());
        }
        self.queued.observe(outcome.timing.queued.as_secs_f64());
    }
}
