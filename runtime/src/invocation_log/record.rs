//! One invocation's log record, and the filters queries take.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::InvokeError;
use crate::invoker::Outcome;

/// A line the function logged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggedLine {
    pub level: String,
    pub message: String,
}

/// Everything recorded about one invocation. Request headers and bodies are not kept: they
/// may carry credentials and personal data. The arguments are, bounded to
/// [`MAX_ARGUMENTS_BYTES`], with the values of credential-like keys replaced (see
/// [`recorded_arguments`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogRecord {
    pub id: uuid::Uuid,
    /// RFC 3339, UTC, milliseconds.
    pub started_at: String,
    /// The same instant in milliseconds since the epoch (the sort key).
    pub started_ms: i64,
    pub duration_ms: u64,
    /// Of the duration: waiting for a run slot, and making the instance (absent in records
    /// written before they were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instantiate_ms: Option<f64>,
    pub space: String,
    pub function: String,
    pub version: Option<String>,
    pub entry: Option<String>,
    pub trigger: String,
    /// The arguments the function got, as JSON text: values of keys that name credentials
    /// replaced by `"[redacted]"`, cut at [`MAX_ARGUMENTS_BYTES`] (then `arguments_bytes` says
    /// how long they were). Absent in records written before arguments were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// The full length of the arguments' JSON text, when `arguments` was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_bytes: Option<u64>,
    /// The HTTP status the caller got (or would have).
    pub status: u16,
    /// `ok` when the function answered (whatever its status), else the error code
    /// (`function_exception`, `timeout`, `memory_limit_exceeded`, `function_trapped`, …).
    pub outcome: String,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub traceback: Option<String>,
    pub logs: Vec<LoggedLine>,
    pub stdout: String,
    pub stderr: String,
    /// The outbound requests it sent (`[network] allow`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<crate::outbound::OutboundCall>,
}

impl LogRecord {
    /// The record of an outcome that finished at `finished`.
    pub fn of(outcome: &Outcome, finished: DateTime<Utc>) -> Self {
        let total = chrono::Duration::from_std(outcome.timing.total).unwrap_or_default();
        let started = finished - total;
        let (outcome_name, error_type, error_message) = match &outcome.result {
            Ok(_) => ("ok".to_string(), None, None),
            Err(InvokeError::FunctionException { type_name, message }) => {
                ("function_exception".into(), Some(type_name.clone()), Some(message.clone()))
            }
            Err(error) => (error.code().to_string(), None, Some(error.to_string())),
        };
        let (arguments, arguments_bytes) = recorded_arguments(&outcome.arguments);
        Self {
            id: outcome.id,
            started_at: started.to_rfc3339_opts(SecondsFormat::Millis, true),
            started_ms: started.timestamp_millis(),
            duration_ms: outcome.timing.total.as_millis() as u64,
            queued_ms: Some(milliseconds(outcome.timing.queued)),
            instantiate_ms: Some(milliseconds(outcome.timing.instantiate)),
            space: outcome.space.clone(),
            function: outcome.function.clone(),
            version: outcome.version.clone(),
            entry: outcome.entry.clone(),
            trigger: outcome.trigger.clone(),
            arguments,
            arguments_bytes,
            status: outcome.status(),
            outcome: outcome_name,
            error_type,
            error_message,
            traceback: outcome.traceback.clone(),
            logs: outcome
                .logs
                .iter()
                .map(|line| LoggedLine {
                    level: line.level.as_str().to_string(),
                    message: line.message.clone(),
                })
                .collect(),
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            outbound: outcome.outbound.clone(),
        }
    }

    /// Sorts by start time: big-endian milliseconds, then the id.
    pub fn key(&self) -> Vec<u8> {
        let mut key = (self.started_ms.max(0) as u64).to_be_bytes().to_vec();
        key.extend_from_slice(self.id.as_bytes());
        key
    }
}

/// A duration in milliseconds, to the microsecond.
fn milliseconds(duration: std::time::Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// The part of a record that statistics need, read without the output and log lines.
#[derive(Clone, Debug, Deserialize)]
pub struct RecordSummary {
    pub started_ms: i64,
    pub duration_ms: u64,
    #[serde(default)]
    pub queued_ms: Option<f64>,
    #[serde(default)]
    pub instantiate_ms: Option<f64>,
    pub space: String,
    pub function: String,
    pub version: Option<String>,
    pub status: u16,
    pub outcome: String,
}

impl RecordSummary {
    /// Whether the call failed: the platform's error, or a 5xx the function answered.
    pub fn failed(&self) -> bool {
        self.outcome != "ok" || self.status >= 500
    }
}

/// How much of an invocation's arguments its record keeps.
pub const MAX_ARGUMENTS_BYTES: usize = 4096;

/// Parts of a key that mark its value as a credential (compared without case).
const CREDENTIAL_KEYS: [&str; 7] =
    ["password", "passwd", "secret", "token", "authorization", "apikey", "api_key"];

/// What a record keeps of `arguments` (the JSON text the function got): `None` when there were
/// none, else the text with every credential-like key's value replaced, cut at
/// [`MAX_ARGUMENTS_BYTES`] on a character boundary; and the full length when it was cut.
pub fn recorded_arguments(arguments: &str) -> (Option<String>, Option<u64>) {
    if arguments.is_empty() || arguments == "{}" {
        return (None, None);
    }
    let lower = arguments.to_ascii_lowercase();
    let text = if CREDENTIAL_KEYS.iter().any(|key| lower.contains(key)) {
        match serde_json::from_str::<serde_json::Value>(arguments) {
            Ok(mut value) => {
                redact_credentials(&mut value);
                value.to_string()
            }
            // Not JSON (never from wasmfn's own triggers): keep nothing rather than a secret.
            Err(_) => "\"[redacted]\"".to_string(),
        }
    } else {
        arguments.to_string()
    };
    if text.len() <= MAX_ARGUMENTS_BYTES {
        return (Some(text), None);
    }
    let mut cut = MAX_ARGUMENTS_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    (Some(text[..cut].to_string()), Some(text.len() as u64))
}

fn redact_credentials(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if CREDENTIAL_KEYS.iter().any(|credential| key.contains(credential)) {
                    *item = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_credentials(item);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_credentials),
        _ => {}
    }
}

/// What a query asks for.
#[derive(Clone, Debug)]
pub struct LogFilter {
    pub space: Option<String>,
    pub function: Option<String>,
    pub trigger: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// An exact status (`500`) or a class (`5xx`).
    pub status: Option<StatusFilter>,
    pub outcome: Option<String>,
    /// Only records of this version.
    pub version: Option<String>,
    /// Only records of one of these spaces (what a console account may read).
    pub spaces: Option<Vec<String>>,
    /// Only records containing this text (any case) in their id, entry, error, traceback,
    /// arguments, output or log lines.
    pub text: Option<String>,
    pub limit: usize,
}

impl Default for LogFilter {
    fn default() -> Self {
        Self {
            space: None,
            function: None,
            trigger: None,
            since: None,
            until: None,
            status: None,
            outcome: None,
            version: None,
            spaces: None,
            text: None,
            limit: 100,
        }
    }
}

/// `500` or `5xx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    Class(u16),
}

impl std::str::FromStr for StatusFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("status '{text}' is neither a code like 500 nor a class like 5xx");
        let lower = text.to_ascii_lowercase();
        if let Some(digit) = lower.strip_suffix("xx") {
            let class: u16 = digit.parse().map_err(|_| bad())?;
            return (1..=5).contains(&class).then_some(Self::Class(class)).ok_or_else(bad);
        }
        let code: u16 = lower.parse().map_err(|_| bad())?;
        (100..=599).contains(&code).then_some(Self::Exact(code)).ok_or_else(bad)
    }
}

impl LogFilter {
    pub fn matches(&self, record: &LogRecord) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        same(&self.space, &record.space)
            && same(&self.function, &record.function)
            && same(&self.trigger, &record.trigger)
            && same(&self.outcome, &record.outcome)
            && self.since.is_none_or(|since| record.started_ms >= since.timestamp_millis())
            && self.until.is_none_or(|until| record.started_ms < until.timestamp_millis())
            && self.version.as_deref().is_none_or(|v| record.version.as_deref() == Some(v))
            && self.spaces.as_ref().is_none_or(|spaces| spaces.contains(&record.space))
            && match self.status {
                None => true,
                Some(StatusFilter::Exact(code)) => record.status == code,
                Some(StatusFilter::Class(class)) => record.status / 100 == class,
            }
            && self.text.as_deref().is_none_or(|text| contains_text(record, text))
    }
}

/// Whether `text` (any case) is in one of the record's searchable fields.
fn contains_text(record: &LogRecord, text: &str) -> bool {
    let needle = text.to_lowercase();
    let has = |field: &str| field.to_lowercase().contains(&needle);
    let optional = |field: &Option<String>| field.as_deref().is_some_and(has);
    has(&record.id.to_string())
        || optional(&record.entry)
        || optional(&record.error_type)
        || optional(&record.error_message)
        || optional(&record.traceback)
        || optional(&record.arguments)
        || has(&record.stdout)
        || has(&record.stderr)
        || record.logs.iter().any(|line| has(&line.message))
}
