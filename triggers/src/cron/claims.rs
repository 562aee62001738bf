//! Cron ticks across the servers of a cluster: every server runs the same schedules, and before
//! firing a tick each claims it in the shared state (`insert_new` of the tick's key with a mark
//! of its own); the server whose mark is kept fires it, the others let it pass. Each tick thus
//! fires once in the cluster while any server is up, with no leader to hand over when one
//! dies. Claims are kept an hour (a server whose clock lags by less than that still finds the
//! claim), then swept by the server that fired the trigger's next tick.

use chrono::{DateTime, Duration, Utc};
use wasmfn_host_apis::state::{prefix_range, StateTree};

use super::CronJob;

/// How long a claim is kept.
const KEEP: Duration = Duration::hours(1);

/// The shared record of which server fires which tick.
#[derive(Clone, Debug)]
pub struct TickClaims {
    tree: StateTree,
    /// This process's mark.
    mark: [u8; 16],
}

impl TickClaims {
    pub fn new(tree: StateTree) -> Self {
        Self { tree, mark: rand::random() }
    }

    /// Whether this server fires `job`'s tick scheduled for `scheduled`. When the state store
    /// fails, no: a tick missed (and logged) rather than fired by every server.
    pub async fn claim(&self, job: &CronJob, scheduled: DateTime<Utc>) -> bool {
        let (claims, prefix) = (self.clone(), prefix(job));
        let key = tick_key(&prefix, scheduled);
        let kept = tokio::task::spawn_blocking(move || {
            let kept = claims.tree.insert_new(&key, claims.mark)?;
            if kept == claims.mark {
                claims.sweep(&prefix, scheduled - KEEP);
            }
            Ok::<_, wasmfn_host_apis::state::StateError>(kept == claims.mark)
        })
        .await;
        match kept {
            Ok(Ok(mine)) => mine,
            Ok(Err(error)) => {
                tracing::error!(space = %job.space, function = %job.function,
                    cron_trigger = %job.trigger.name, %error,
                    "cron tick not fired: the state store shared by the cluster failed");
                false
            }
            Err(_) => false,
        }
    }

    /// Removes the trigger's claims older than `before`.
    fn sweep(&self, prefix: &[u8], before: DateTime<Utc>) {
        let end = tick_key(prefix, before);
        let old: Vec<_> = self
            .tree
            .scan(prefix_range(prefix), false)
            .map_while(Result::ok)
            .take_while(|(key, _)| *key < end)
            .map(|(key, _)| (key, None))
            .collect();
        if !old.is_empty() {
            let _ = self.tree.apply(old);
        }
    }
}

fn prefix(job: &CronJob) -> Vec<u8> {
    format!("{}/{}/{}/", job.space, job.function, job.trigger.name).into_bytes()
}

/// The key of a tick: the trigger's prefix and the scheduled time, in an order that sorts as
/// time does.
fn tick_key(prefix: &[u8], scheduled: DateTime<Utc>) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{:020}", scheduled.timestamp_millis().max(0)).as_bytes());
    key
}
