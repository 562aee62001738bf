//! One lifecycle for every kind of trigger a function declares in its `function.toml`
//! (`[[cron]]`, `[[mqtt]]`, `[[events]]`): the triggers belong to a *version* and run while it
//! is the active version of its function. However a version becomes active (served from a
//! folder, deployed, restored after a restart, rolled back to), its triggers replace those of
//! the version before it; when the function is deleted they stop. A version whose triggers
//! cannot start (an entry it does not expose, an unset `password_env`, a name another trigger
//! holds) is refused before it serves.
//!
//! A kind of trigger is one [`TriggerKind`]; [`FunctionTriggers`] holds the node's kinds and is
//! the registry's [`ActivationListener`], so the registry (the invocation core) never knows what
//! a trigger is. Adding a kind: implement the trait and add it in `Node::new`.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::registry::{ActivationListener, FunctionVersion};

/// A kind of trigger that function versions declare.
pub trait TriggerKind: Send + Sync {
    /// `cron`, `mqtt`, `events`: the `type` listings show.
    fn kind(&self) -> &'static str;

    /// Whether the triggers of this kind `version` declares can start, replacing those of the
    /// function's active version. Says which trigger and why when not.
    fn check(&self, version: &FunctionVersion) -> Result<(), String>;

    /// Starts the triggers of this kind `version` declares, and stops those the function's
    /// previous version declared (runs in flight finish). Called once `version` is active.
    fn start(&self, version: &Arc<FunctionVersion>);

    /// Stops the declared triggers of `space/function` (the function was deleted).
    fn stop(&self, space: &str, function: &str);

    /// Every trigger of this kind (declared or admin-created), or those of one space, as
    /// listings show them: `space`, `name`, `type`, `origin` (with `function` and `version` for
    /// declared ones), `config` and `status`.
    fn list(&self, space: Option<&str>) -> Vec<Value>;

    /// Stops every trigger of this kind, letting runs in flight finish.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// The node's trigger kinds, started, swapped and stopped with function versions.
pub struct FunctionTriggers {
    kinds: Vec<Arc<dyn TriggerKind>>,
}

impl std::fmt::Debug for FunctionTriggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<_> = self.kinds.iter().map(|k| k.kind()).collect();
        f.debug_struct("FunctionTriggers").field("kinds", &kinds).finish()
    }
}

impl FunctionTriggers {
    pub fn new(kinds: Vec<Arc<dyn TriggerKind>>) -> Self {
        Self { kinds }
    }

    /// Every trigger of every kind, or those of one space, by kind then as each kind lists.
    pub fn list(&self, space: Option<&str>) -> Vec<Value> {
        self.kinds.iter().flat_map(|kind| kind.list(space)).collect()
    }

    /// Stops every trigger, letting runs in flight finish.
    pub async fn shutdown(&self) {
        for kind in &self.kinds {
            kind.shutdown().await;
        }
    }
}

impl ActivationListener for FunctionTriggers {
    fn check(&self, version: &FunctionVersion) -> Result<(), String> {
        for kind in &self.kinds {
            kind.check(version).map_err(|why| {
                format!(
                    "version {} of {}/{} declares a trigger that cannot start: {why}",
                    version.version, version.space, version.name
                )
            })?;
        }
        Ok(())
    }

    fn activated(&self, version: &Arc<FunctionVersion>) {
        for kind in &self.kinds {
            kind.start(version);
        }
    }

    fn removed(&self, space: &str, function: &str) {
        for kind in &self.kinds {
            kind.stop(space, function);
        }
    }
}

/// Where a trigger was configured, as listings show it (flattened: `"origin": "admin"`, or
/// `"origin": "function_toml", "function": …, "version": …`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum TriggerOrigin {
    /// Declared by this version of this function; lives while the version is active.
    FunctionToml { function: String, version: String },
    /// Created through the admin API; saved, and deleted through it.
    Admin,
}

impl TriggerOrigin {
    pub fn declared_by(version: &FunctionVersion) -> Self {
        Self::FunctionToml { function: version.name.clone(), version: version.version.clone() }
    }

    /// Whether `function` declared it (whatever the version).
    pub fn is_declared_by(&self, function: &str) -> bool {
        matches!(self, Self::FunctionToml { function: f, .. } if f == function)
    }
}
