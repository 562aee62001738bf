//! Deploying bundles into a running server: versions that must increase, a background compile
//! after which the new version becomes active atomically (calls in flight finish on the version
//! they started with), rollback to any kept version, and a bundle store on disk
//! (`<data-dir>/bundles/<sha256>.wasm`, records in the state database) that survives restarts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::task::AbortOnDropHandle;

use crate::bundle::{self, BundleError};
use crate::registry::FunctionVersion;
use crate::runtime::Runtime;
use wasmfn_host_apis::state::StateTree;

mod shared_bundles;
use shared_bundles::SharedBundles;

/// Versions kept per function by default (the active one always is).
pub const DEFAULT_KEEP_VERSIONS: usize = 5;

/// Where a deployed version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Accepted and being compiled; the previous version still serves.
    Compiling,
    /// Serving calls.
    Active,
    /// Compiled and kept, for rollback.
    Inactive,
    /// Refused after the compile; `error` says why. Never served.
    Failed,
}

/// One deployed version of a function.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub deployed_at: String,
    /// Who deployed it: `admin token`, or a console account's email (absent in records written
    /// before this was kept, and for served versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
    pub state: VersionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Kept from `wasmfn serve`'s command line when a deployed version took over from it
    /// (see [`Deployments::note_served`]), not deployed through the admin API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub served: bool,
    /// In a cluster, the server compiling it (while `compiling`): the one that accepted it, or
    /// the one that took the compile over when that server was gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiling_on: Option<String>,
}

/// The deployed versions of one function, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub space: String,
    pub name: String,
    pub versions: Vec<VersionRecord>,
}

impl FunctionRecord {
    fn active(&self) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.state == VersionState::Active)
    }

    fn find_mut(&mut self, version: &str) -> Option<&mut VersionRecord> {
        self.versions.iter_mut().find(|v| v.version == version)
    }

    fn sort(&mut self) {
        self.versions.sort_by_key(|v| semver::Version::parse(&v.version).ok());
    }

    /// Records how the compile of `version` ended, on the record as it is in the store at
    /// this instant (called inside the compare-and-swap): a compiled version becomes active
    /// (the active one before it inactive) unless a version newer than it became active
    /// meanwhile, possibly on another server of the cluster; then it is kept inactive, and
    /// `superseded` says so. Returns the version as recorded.
    fn settle(
        &mut self,
        version: &str,
        outcome: &Result<bool, String>,
    ) -> Result<Settled, DeployError> {
        let newer_active = match self.active().filter(|v| v.version != version) {
            Some(active) => parse_version(&active.version)? > parse_version(version)?,
            None => false,
        };
        let Some(entry) = self.find_mut(version) else { return Ok(Settled::Gone) };
        entry.compiling_on = None;
        let superseded = matches!(outcome, Ok(true)) && newer_active;
        match outcome {
            Ok(true) if !newer_active => entry.state = VersionState::Active,
            Ok(_) => entry.state = VersionState::Inactive,
            Err(error) => {
                entry.state = VersionState::Failed;
                entry.error = Some(error.clone());
            }
        }
        let settled = entry.clone();
        if settled.state == VersionState::Active {
            for other in self.versions.iter_mut().filter(|v| v.version != version) {
                if other.state == VersionState::Active {
                    other.state = VersionState::Inactive;
                }
            }
        }
        Ok(Settled::Recorded { version: settled, superseded })
    }
}

/// What [`FunctionRecord::settle`] made of a compiled version.
#[derive(Debug)]
enum Settled {
    /// No longer in the record (deleted, or pruned, while it compiled).
    Gone,
    /// Recorded; `superseded` when it compiled and was activated on this server but a newer
    /// version had become active in the record meanwhile, so it was kept inactive.
    Recorded { version: VersionRecord, superseded: bool },
}

/// Why a deploy, rollback or delete was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "version {version} is not greater than the active version {active} of {space}/{name}: \
         deploy a higher version, or roll back to a kept one"
    )]
    NotNewer { space: String, name: String, version: String, active: String },
    #[error("version {version} of {space}/{name} is already deployed; roll back to it instead")]
    Exists { space: String, name: String, version: String },
    #[error("{space}/{name} has no kept version {version}")]
    NoSuchVersion { space: String, name: String, version: String },
    #[error("version {version} of {space}/{name} failed to compile, so it cannot be activated")]
    NotRunnable { space: String, name: String, version: String },
    #[error("no function '{name}' in space '{space}'")]
    NotFound { space: String, name: String },
    #[error("version {version} of {space}/{name} was refused: {reason}")]
    Failed { space: String, name: String, version: String, reason: String },
    #[error("the bundle store failed: {0}")]
    Store(String),
}

/// How often a record change is tried when other writers keep changing it.
const UPDATE_ATTEMPTS: usize = 50;

fn store_error(error: impl std::fmt::Display) -> DeployError {
    DeployError::Store(error.to_string())
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_version(text: &str) -> Result<semver::Version, DeployError> {
    semver::Version::parse(text).map_err(|e| {
        DeployError::Invalid(format!("version '{text}' is not a semantic version like 1.2.3: {e}"))
    })
}

/// The deployed functions of a server.
pub struct Deployments {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    tree: StateTree,
    /// Bundles by sha256, shared with the other nodes of a cluster (none on a single node: the
    /// files in `dir` are all there is).
    shared_bundles: Option<SharedBundles>,
    keep: usize,
    /// Serialises read-modify-write of records; never held across an await.
    lock: Mutex<()>,
    /// The versions served from the command line that no record keeps yet, by `(space, name)`,
    /// with the file their bundle waits in (one per function).
    served: Mutex<std::collections::HashMap<(String, String), (VersionRecord, PathBuf)>>,
    /// This server's id in a cluster (see [`Deployments::in_cluster`]).
    node: Option<String>,
}

impl std::fmt::Debug for Deployments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployments").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A request to deploy a bundle.
#[derive(Debug)]
pub struct DeployRequest {
    pub space: String,
    /// Default: the name in the bundle's metadata.
    pub name: Option<String>,
    /// Default: the version in the bundle's metadata.
    pub version: Option<String>,
    pub bytes: Vec<u8>,
    /// Wait for the compile and answer with the final state.
    pub wait: bool,
    /// Who deploys it, for the version's record.
    pub deployed_by: Option<String>,
}

impl Deployments {
    /// `dir`: where bundles are kept; `tree`: where records are.
    pub fn new(runtime: Arc<Runtime>, dir: PathBuf, tree: StateTree, keep: usize) -> Self {
        Self {
            runtime,
            dir,
            tree,
            shared_bundles: None,
            node: None,
            keep: keep.max(1),
            lock: Mutex::new(()),
            served: Mutex::new(Default::default()),
        }
    }

    /// Shares bundles with the other nodes of a cluster through `tree` (by sha256): a node that
    /// hears of a version it has no file for reads it from there. `node` is this server's id
    /// in the cluster, which the versions it compiles name (`compiling_on`).
    pub fn in_cluster(mut self, tree: StateTree, node: String) -> Self {
        self.shared_bundles = Some(SharedBundles::new(tree));
        self.node = Some(node);
        self
    }

    /// Checks and stores a bundle, then compiles it in the background; it becomes active once
    /// compiled if it is still newer than the active version.
    pub async fn deploy(
        self: &Arc<Self>,
        request: DeployRequest,
    ) -> Result<VersionRecord, DeployError> {
        let DeployRequest { space, name, version, bytes, wait, deployed_by } = request;
        crate::names::validate_name(&space).map_err(DeployError::Invalid)?;
        bundle::check_header(&bytes)?;
        crate::world::check_world(&bytes)?;
        let meta = bundle::read_meta(&bytes)?.unwrap_or_default();
        let name = name.filter(|n| !n.is_empty()).or(Some(meta.name).filter(|n| !n.is_empty()));
        let name = name.ok_or_else(|| {
            DeployError::Invalid("the bundle has no function name: give one".into())
        })?;
        crate::names::validate_name(&name).map_err(DeployError::Invalid)?;
        let version_text =
            version.filter(|v| !v.is_empty()).or(Some(meta.version).filter(|v| !v.is_empty()));
        let version_text = version_text.ok_or_else(|| {
            DeployError::Invalid("the bundle has no version: give one (like 1.0.0)".into())
        })?;
        let version = parse_version(&version_text)?;
        let size = bytes.len() as u64;
        // Whether the version is newer than the active one is decided here, as the deploy
        // arrives, before anything is hashed, stored or compiled. A newer version activated
        // elsewhere while this one is stored (another server of a cluster) makes this one
        // `inactive` when its compile ends, as if it had been accepted a moment earlier: the
        // compare-and-swap below only refuses a version number taken meanwhile.
        if let Some(record) = self.record(&space, &name)? {
            self.check_new_version(&record, &version_text, Some(&version))?;
        }
        // Hashing a CPython bundle takes ~20-45 ms: not on an async worker.
        let hashed = tokio::task::spawn_blocking(move || bundle::HashedBundle::new(bytes))
            .await
            .map_err(store_error)?;
        let sha256 = hashed.sha256().to_string();
        // The compile starts now and runs while the bundle is written (fsync included) and the
        // deploy recorded, instead of after: on two cores that takes ~0.1 s off deploy -> first
        // response. It only prepares the version; `record_compiled` activates it once the
        // deploy is recorded. A deploy refused or not stored after all aborts it (before Cranelift's
        // background compile starts, unless the load has finished already), and so does a
        // deploy whose caller goes away before it is recorded (the handle aborts when dropped).
        let prepared = {
            let runtime = self.runtime.clone();
            let bundle = hashed.clone();
            let (space, name, version) = (space.clone(), name.clone(), version_text.clone());
            AbortOnDropHandle::new(tokio::spawn(async move {
                runtime
                    .prepare(bundle, &space, Some(name), Some(version))
                    .await
                    .map_err(|e| e.to_string())
            }))
        };
        let store = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write_bundle(&store.bundle_path(hashed.sha256()), hashed.sha256(), hashed.bytes())
        })
        .await
        .map_err(store_error)?;
        written?;
        let accepted = {
            let _guard = self.lock.lock().expect("deployments lock");
            let accepted = self.update(&space, &name, |record| {
                let mut record = record.unwrap_or_else(|| FunctionRecord {
                    space: space.clone(),
                    name: name.clone(),
                    versions: Vec::new(),
                });
                self.check_new_version(&record, &version_text, None)?;
                record.versions.retain(|v| v.version != version_text);
                let accepted = VersionRecord {
                    version: version_text.clone(),
                    sha256: sha256.clone(),
                    size,
                    deployed_at: now(),
                    deployed_by: deployed_by.clone(),
                    state: VersionState::Compiling,
                    error: None,
                    served: false,
                    compiling_on: self.node.clone(),
                };
                record.versions.push(accepted.clone());
                // After the push: a served version equal to the deployed one is not kept.
                self.adopt_served(&mut record)?;
                record.sort();
                Ok((Some(record), accepted))
            });
            match accepted {
                Ok(accepted) => accepted,
                Err(refused @ (DeployError::NotNewer { .. } | DeployError::Exists { .. })) => {
                    // The bundle was stored before the checks; keep no file nothing points to.
                    self.remove_bundle_if_unused(&sha256)?;
                    return Err(refused);
                }
                Err(other) => return Err(other),
            }
        };
        tracing::info!(%space, function = %name, version = %version_text, "deploy accepted; compiling");
        let this = self.clone();
        let (task_space, task_name) = (space.clone(), name.clone());
        let compiling = tokio::spawn(async move {
            let prepared =
                prepared.await.unwrap_or_else(|e| Err(format!("the compile task failed: {e}")));
            this.record_compiled(task_space, task_name, version_text, prepared).await
        });
        if !wait {
            return Ok(accepted);
        }
        let done = compiling.await.map_err(store_error)?;
        match done {
            Ok(record) if record.state == VersionState::Failed => Err(DeployError::Failed {
                space,
                name,
                version: record.version,
                reason: record.error.unwrap_or_default(),
            }),
            other => other,
        }
    }

    /// Refuses a deploy of `version_text` to the function of `record` when a version of that
    /// number is there and not failed, or (given `newer_than_active`, the version parsed) when
    /// the active version is not older.
    fn check_new_version(
        &self,
        record: &FunctionRecord,
        version_text: &str,
        newer_than_active: Option<&semver::Version>,
    ) -> Result<(), DeployError> {
        if let (Some(version), Some(active)) = (newer_than_active, self.active_version(record)) {
            if parse_version(&active)? >= *version {
                return Err(DeployError::NotNewer {
                    space: record.space.clone(),
                    name: record.name.clone(),
                    version: version_text.to_string(),
                    active,
                });
            }
        }
        let taken = record
            .versions
            .iter()
            .any(|v| v.version == version_text && v.state != VersionState::Failed);
        if taken {
            return Err(DeployError::Exists {
                space: record.space.clone(),
                name: record.name.clone(),
                version: version_text.to_string(),
            });
        }
        Ok(())
    }

    /// Compiles an accepted version and records the result.
    async fn compile(
        &self,
        space: String,
        name: String,
        version: String,
        bundle: impl Into<bundle::BundleBytes>,
    ) -> Result<VersionRecord, DeployError> {
        let prepared = self
            .runtime
            .prepare(bundle, &space, Some(name.clone()), Some(version.clone()))
            .await
            .map_err(|e| e.to_string());
        self.record_compiled(space, name, version, prepared).await
    }

    /// Records the compile of an accepted version (`prepared`, or why it failed) and activates
    /// it if it is newer than the active one.
    async fn record_compiled(
        &self,
        space: String,
        name: String,
        version: String,
        prepared: Result<FunctionVersion, String>,
    ) -> Result<VersionRecord, DeployError> {
        let (result, superseded, dropped) = {
            let _guard = self.lock.lock().expect("deployments lock");
            let record = self.record(&space, &name)?.ok_or_else(|| DeployError::NotFound {
                space: space.clone(),
                name: name.clone(),
            })?;
            let active = self.active_version(&record);
            let newer = match &active {
                Some(active) => parse_version(&version)? > parse_version(active)?,
                None => true,
            };
            if record.versions.iter().all(|v| v.version != version) {
                return Err(DeployError::NoSuchVersion { space, name, version });
            }
            // Activating runs the checks of the triggers the version declares: it may refuse.
            // `newer` is only a first look: another server may activate a newer version before
            // this one is recorded, which `settle` sees inside the compare-and-swap.
            let outcome = match prepared {
                Ok(prepared) if newer => self
                    .runtime
                    .registry()
                    .activate(prepared)
                    .map(|_| true)
                    .map_err(|e| e.to_string()),
                Ok(_) => Ok(false),
                Err(error) => Err(error),
            };
            if let Err(error) = &outcome {
                tracing::warn!(%space, function = %name, %version, %error, "deploy refused");
            }
            self.update(&space, &name, |record| {
                let no_such = || DeployError::NoSuchVersion {
                    space: space.clone(),
                    name: name.clone(),
                    version: version.clone(),
                };
                let mut record = record.ok_or_else(no_such)?;
                let Settled::Recorded { version: result, superseded } =
                    record.settle(&version, &outcome)?
                else {
                    return Err(no_such());
                };
                let dropped = self.prune(&mut record);
                Ok((Some(record), (result, superseded, dropped)))
            })?
        };
        match result.state {
            VersionState::Active => {
                tracing::info!(%space, function = %name, %version, "version active")
            }
            VersionState::Inactive => tracing::info!(%space, function = %name, %version,
                "version compiled, but a newer one became active meanwhile; kept inactive"),
            _ => {}
        }
        for sha256 in dropped {
            self.remove_bundle_if_unused(&sha256)?;
        }
        if superseded {
            // This server swapped the version in before the record said a newer one is active:
            // bring it back to what the record says.
            self.follow(&space, &name).await?;
        }
        Ok(result)
    }

    /// Takes over the compiles of the versions server `gone` accepted (or adopted) and did not
    /// finish: each claimed by compare-and-swap on its record, so by one server, then compiled
    /// here and made active as if deployed here. Returns how many it took.
    pub async fn adopt_compiles(self: &Arc<Self>, gone: &str) -> Result<usize, DeployError> {
        let Some(node) = self.node.clone() else { return Ok(0) };
        let store = self.clone();
        let all = tokio::task::spawn_blocking(move || store.all()).await.map_err(store_error)??;
        let mut adopted = 0;
        for record in all {
            let orphaned = record.versions.iter().filter(|v| {
                v.state == VersionState::Compiling && v.compiling_on.as_deref() == Some(gone)
            });
            for version in orphaned.cloned().collect::<Vec<_>>() {
                let (space, name) = (record.space.clone(), record.name.clone());
                let (store, claimed_by) = (self.clone(), node.clone());
                let wanted = version.version.clone();
                let from = gone.to_string();
                let claimed = tokio::task::spawn_blocking(move || {
                    let _guard = store.lock.lock().expect("deployments lock");
                    store.update(&space, &name, |record| {
                        let Some(mut record) = record else { return Ok((None, false)) };
                        let Some(entry) = record.find_mut(&wanted) else {
                            return Ok((Some(record), false));
                        };
                        let still = entry.state == VersionState::Compiling
                            && entry.compiling_on.as_deref() == Some(from.as_str());
                        if still {
                            entry.compiling_on = Some(claimed_by.clone());
                        }
                        Ok((Some(record), still))
                    })
                })
                .await
                .map_err(store_error)??;
                if !claimed {
                    continue;
                }
                let (space, name) = (record.space.clone(), record.name.clone());
                tracing::info!(%space, function = %name, version = %version.version, %gone,
                    "taking over the compile of a version a gone server accepted");
                if let Some(bytes) = self.bundle_or_mark_failed(&space, &name, &version).await? {
                    let this = self.clone();
                    let version = version.version.clone();
                    tokio::spawn(async move { this.compile(space, name, version, bytes).await });
                    adopted += 1;
                }
            }
        }
        Ok(adopted)
    }

    /// Makes a kept version active again.
    pub async fn rollback(
        &self,
        space: &str,
        name: &str,
        version: &str,
    ) -> Result<VersionRecord, DeployError> {
        let no_such = || DeployError::NoSuchVersion {
            space: space.into(),
            name: name.into(),
            version: version.into(),
        };
        let target = {
            let _guard = self.lock.lock().expect("deployments lock");
            let record = self.record(space, name)?.ok_or_else(no_such)?;
            record.versions.iter().find(|v| v.version == version).cloned().ok_or_else(no_such)?
        };
        match target.state {
            VersionState::Active => return Ok(target),
            VersionState::Inactive => {}
            VersionState::Compiling | VersionState::Failed => {
                return Err(DeployError::NotRunnable {
                    space: space.into(),
                    name: name.into(),
                    version: version.into(),
                })
            }
        }
        let bytes = self.read_bundle(&target.sha256).await?;
        let prepared =
            self.runtime.prepare(bytes, space, Some(name.into()), Some(version.into())).await?;
        let _guard = self.lock.lock().expect("deployments lock");
        if self
            .record(space, name)?
            .is_none_or(|r| !r.versions.iter().any(|v| v.version == version))
        {
            return Err(no_such());
        }
        self.runtime.registry().activate(prepared)?;
        let rolled = self.update(space, name, |record| {
            let mut record = record.ok_or_else(no_such)?;
            for entry in &mut record.versions {
                if entry.version == version {
                    entry.state = VersionState::Active;
                } else if entry.state == VersionState::Active {
                    entry.state = VersionState::Inactive;
                }
            }
            let rolled = record.find_mut(version).cloned().ok_or_else(no_such)?;
            Ok((Some(record), rolled))
        })?;
        tracing::info!(%space, function = %name, %version, "rolled back");
        Ok(rolled)
    }

    /// Takes a function out of service and forgets its versions (a function served from a
    /// path given to `wasmfn serve` comes back at the next start).
    pub fn delete(&self, space: &str, name: &str) -> Result<(), DeployError> {
        let _guard = self.lock.lock().expect("deployments lock");
        let removed = self.runtime.registry().remove(space, name);
        let record = self.update(space, name, |record| Ok((None, record)))?;
        if record.is_none() && removed.is_none() {
            return Err(DeployError::NotFound { space: space.into(), name: name.into() });
        }
        if let Some(record) = record {
            for version in &record.versions {
                self.remove_bundle_if_unused(&version.sha256)?;
            }
        }
        tracing::info!(%space, function = %name, "function deleted");
        Ok(())
    }

    /// Activates the active version of every deployed function (at start), and compiles
    /// versions a crash interrupted (in the background, under the same deadline as a deploy).
    /// A version that cannot be loaded is marked `failed` with the reason, so that the server
    /// starts ready without it and never tries it again; deploying it again, or rolling back to
    /// a kept version, brings the function back. (In a cluster an active version that cannot be
    /// read or loaded is only logged: the record is the cluster's, and the other servers may
    /// serve the version; the next deploy or rollback brings it here too.) Returns how many
    /// functions are active.
    pub async fn restore(self: &Arc<Self>) -> Result<usize, DeployError> {
        let records: Vec<FunctionRecord> = self.all()?;
        let mut restored = 0;
        for record in records {
            for version in &record.versions {
                let wanted =
                    matches!(version.state, VersionState::Active | VersionState::Compiling);
                // In a cluster the node that accepted a deploy compiles it (this one, if it
                // restarted with the same id); the others load it once it is active (`follow`),
                // or take the compile over if that node is gone (`adopt_compiles`).
                let elsewhere = version.state == VersionState::Compiling
                    && self.shared_bundles.is_some()
                    && version.compiling_on != self.node;
                if !wanted || elsewhere {
                    continue;
                }
                let (space, name) = (record.space.clone(), record.name.clone());
                let Some(bytes) = self.bundle_or_mark_failed(&space, &name, version).await? else {
                    continue;
                };
                if version.state == VersionState::Compiling {
                    let this = self.clone();
                    let version = version.version.clone();
                    tokio::spawn(async move { this.compile(space, name, version, bytes).await });
                    continue;
                }
                match self
                    .runtime
                    .prepare(bytes, &space, Some(name.clone()), Some(version.version.clone()))
                    .await
                    .and_then(|prepared| self.runtime.registry().activate(prepared))
                {
                    Ok(_) => restored += 1,
                    // In a cluster the record is every server's: a version the others serve is
                    // not marked failed for what went wrong on this one.
                    Err(error) if self.node.is_some() => {
                        tracing::error!(%space, function = %name, version = %version.version,
                            %error, "deployed version failed to load on this server; serving \
                            without it (the other servers are not affected)");
                    }
                    Err(error) => {
                        tracing::error!(%space, function = %name, version = %version.version,
                            %error, "deployed version failed to load; marked failed, serving \
                            without it (deploy it again or roll back to fix)");
                        self.mark_failed(&space, &name, &version.version, &error.to_string())?;
                    }
                }
            }
        }
        Ok(restored)
    }

    /// A function served from the command line (at start, before [`Deployments::restore`]):
    /// once a deployed version takes over from it, its version is kept like a deployed one
    /// (`served: true`, inactive), so that it can be rolled back to. When the function has
    /// deployed versions already, that is now; else its bundle waits in
    /// `<bundles>/served/<space>/<name>/` (one file per function, replaced when the served
    /// bundle changes) for the first deploy.
    /// `served` is the version loaded from `bytes` (its sha256 is theirs).
    pub fn note_served(&self, served: &FunctionVersion, bytes: &[u8]) -> Result<(), DeployError> {
        let (space, name) = (&served.space, &served.name);
        let folder = self.dir.join("served").join(space).join(name);
        let path = folder.join(format!("{}.wasm", served.sha256));
        if !path.exists() {
            // One waiting bundle per function: the one served now.
            let _ = std::fs::remove_dir_all(&folder);
        }
        self.write_bundle(&path, &served.sha256, bytes)?;
        let kept = VersionRecord {
            version: served.version.clone(),
            sha256: served.sha256.clone(),
            size: bytes.len() as u64,
            deployed_at: now(),
            deployed_by: None,
            state: VersionState::Inactive,
            error: None,
            served: true,
            compiling_on: None,
        };
        self.served
            .lock()
            .expect("served versions")
            .insert((space.clone(), name.clone()), (kept, path));
        let _guard = self.lock.lock().expect("deployments lock");
        self.update(space, name, |record| match record {
            Some(mut record) => {
                self.adopt_served(&mut record)?;
                Ok((Some(record), ()))
            }
            None => Ok((None, ())),
        })
    }

    /// Adds the served version of `record`'s function to it as a kept one, unless it has that
    /// version already (a deployed bundle of the same version wins). True when it did.
    fn adopt_served(&self, record: &mut FunctionRecord) -> Result<bool, DeployError> {
        let waiting = {
            let served = self.served.lock().expect("served versions");
            served.get(&(record.space.clone(), record.name.clone())).cloned()
        };
        let Some((kept, path)) = waiting else { return Ok(false) };
        if record.versions.iter().any(|v| v.version == kept.version) {
            return Ok(false);
        }
        let target = self.bundle_path(&kept.sha256);
        if !target.exists() {
            std::fs::create_dir_all(&self.dir).map_err(store_error)?;
            std::fs::copy(&path, &target).map_err(store_error)?;
        }
        tracing::info!(space = %record.space, function = %record.name, version = %kept.version,
            "the served version is kept, for rollback, now that a deployed one takes over");
        record.versions.push(kept);
        record.sort();
        Ok(true)
    }

    /// Records that `version` cannot be served, and why.
    fn mark_failed(
        &self,
        space: &str,
        name: &str,
        version: &str,
        reason: &str,
    ) -> Result<(), DeployError> {
        let _guard = self.lock.lock().expect("deployments lock");
        self.update(space, name, |record| {
            let mut record = record;
            if let Some(entry) = record.as_mut().and_then(|r| r.find_mut(version)) {
                entry.state = VersionState::Failed;
                entry.error = Some(reason.to_string());
            }
            Ok((record, ()))
        })
    }

    /// Every deployed function's record, by space and name.
    pub fn all(&self) -> Result<Vec<FunctionRecord>, DeployError> {
        self.tree
            .iter()
            .map(|entry| {
                let (_, value) = entry.map_err(store_error)?;
                serde_json::from_slice(&value).map_err(store_error)
            })
            .collect()
    }

    pub fn record(&self, space: &str, name: &str) -> Result<Option<FunctionRecord>, DeployError> {
        match self.tree.get(key(space, name)).map_err(store_error)? {
            Some(value) => Ok(Some(serde_json::from_slice(&value).map_err(store_error)?)),
            None => Ok(None),
        }
    }

    /// The active version: the record's, or that of a function served from a path.
    fn active_version(&self, record: &FunctionRecord) -> Option<String> {
        record.active().map(|v| v.version.clone()).or_else(|| {
            self.runtime.registry().get(&record.space, &record.name).ok().map(|v| v.version.clone())
        })
    }

    /// Changes a function's record with `change` (given the stored record, or none; giving
    /// the new one, or none to remove it, and a result) as one atomic step of the state store:
    /// compare-and-swap, and `change` again on the newer record if another server or task wrote
    /// it in between. Servers sharing their state deploy, roll back and delete the same
    /// function at the same instant without losing each other's versions.
    fn update<T>(
        &self,
        space: &str,
        name: &str,
        mut change: impl FnMut(
            Option<FunctionRecord>,
        ) -> Result<(Option<FunctionRecord>, T), DeployError>,
    ) -> Result<T, DeployError> {
        let key = key(space, name);
        for _ in 0..UPDATE_ATTEMPTS {
            let old = self.tree.get(&key).map_err(store_error)?;
            let record =
                old.as_deref().map(serde_json::from_slice).transpose().map_err(store_error)?;
            let (new, result) = change(record)?;
            let new = new.map(|record| serde_json::to_vec(&record).expect("records serialise"));
            if new == old {
                return Ok(result);
            }
            if self
                .tree
                .compare_and_swap(&key, old.as_deref(), new.as_deref())
                .map_err(store_error)?
            {
                self.tree.flush().map_err(store_error)?;
                return Ok(result);
            }
        }
        Err(DeployError::Store(format!(
            "the record of '{space}/{name}' kept changing under this change; try again"
        )))
    }

    /// Drops the oldest versions beyond `keep`, never the active or a compiling one; returns
    /// the dropped versions' bundles, to remove once the record is saved without them.
    fn prune(&self, record: &mut FunctionRecord) -> Vec<String> {
        let mut dropped = Vec::new();
        while record.versions.len() > self.keep {
            let Some(oldest) = record
                .versions
                .iter()
                .position(|v| !matches!(v.state, VersionState::Active | VersionState::Compiling))
            else {
                break;
            };
            dropped.push(record.versions.remove(oldest).sha256);
        }
        dropped
    }

    fn remove_bundle_if_unused(&self, sha256: &str) -> Result<(), DeployError> {
        let used = self.all()?.iter().any(|r| r.versions.iter().any(|v| v.sha256 == sha256));
        if !used {
            let _ = std::fs::remove_file(self.bundle_path(sha256));
            if let Some(shared) = &self.shared_bundles {
                shared.remove(sha256).map_err(store_error)?;
            }
        }
        Ok(())
    }

    /// The bundle of a version to load or compile; if no store has it, the version is marked
    /// failed (nothing could ever load it) and `None` is returned. In a cluster an active
    /// version is only logged: the record is the cluster's, and the other servers serve it
    /// (this one may only have found the state store not answering as it started).
    async fn bundle_or_mark_failed(
        &self,
        space: &str,
        name: &str,
        version: &VersionRecord,
    ) -> Result<Option<bundle::BundleBytes>, DeployError> {
        match self.read_bundle(&version.sha256).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if self.node.is_some() && version.state == VersionState::Active => {
                tracing::error!(%space, function = %name, version = %version.version, %error,
                    "could not read an active version's bundle; serving without it (the other \
                    servers are not affected)");
                Ok(None)
            }
            Err(error) => {
                tracing::error!(%space, function = %name, version = %version.version, %error,
                    "the version's bundle is missing from the bundle store; version marked failed");
                let reason = "its bundle is missing from the bundle store";
                self.mark_failed(space, name, &version.version, reason)?;
                Ok(None)
            }
        }
    }

    /// A stored bundle: this node's file, else the cluster's copy (kept as a file from then on;
    /// checked against its hash, which the load then reuses).
    async fn read_bundle(&self, sha256: &str) -> Result<bundle::BundleBytes, DeployError> {
        let path = self.bundle_path(sha256);
        match tokio::fs::read(&path).await {
            Ok(bytes) => return Ok(bytes.into()),
            Err(error) if self.shared_bundles.is_none() => return Err(store_error(error)),
            Err(_) => {}
        }
        let shared = self.shared_bundles.clone().expect("checked above");
        let key = sha256.to_string();
        // Fetching, hashing and writing a CPython bundle: not on an async worker.
        let hashed = tokio::task::spawn_blocking(move || {
            let bytes = shared
                .get(&key)
                .map_err(store_error)?
                .ok_or_else(|| store_error("the bundle is in no store of the cluster"))?;
            let hashed = bundle::HashedBundle::new(bytes);
            if hashed.sha256() != key {
                return Err(store_error("the cluster's copy of the bundle is damaged"));
            }
            write_file(&path, hashed.bytes())?;
            Ok(hashed)
        })
        .await
        .map_err(store_error)??;
        Ok(hashed.into())
    }

    /// Brings this node's registry to what the function's record says, after another node of
    /// the cluster changed it: the active version is loaded (its bundle read from the cluster's
    /// store if this node has no copy) and swapped in; a deleted function is taken out of
    /// service. A version still compiling elsewhere is left until it is active.
    pub async fn follow(&self, space: &str, name: &str) -> Result<(), DeployError> {
        let Some(record) = self.record(space, name)? else {
            let served_here = self
                .served
                .lock()
                .expect("served versions")
                .contains_key(&(space.into(), name.into()));
            if !served_here && self.runtime.registry().remove(space, name).is_some() {
                tracing::info!(%space, function = %name, "function deleted on another node");
            }
            return Ok(());
        };
        let Some(active) = record.active().cloned() else { return Ok(()) };
        let current = self.runtime.registry().get(space, name).ok();
        if current.is_some_and(|v| v.version == active.version && v.sha256 == active.sha256) {
            return Ok(());
        }
        let bytes = self.read_bundle(&active.sha256).await?;
        let prepared = self
            .runtime
            .prepare(bytes, space, Some(name.into()), Some(active.version.clone()))
            .await?;
        // The compile took seconds: if the record changed meanwhile (another deploy, or one of
        // this server's own compiles activated a newer version), this version is stale, and
        // the change's own notice brings the function up to date. Checked and swapped under
        // the lock this server's compiles activate under, so neither undoes the other.
        let _guard = self.lock.lock().expect("deployments lock");
        let still = self
            .record(space, name)?
            .and_then(|record| record.active().cloned())
            .is_some_and(|now| now.version == active.version && now.sha256 == active.sha256);
        if !still {
            tracing::debug!(%space, function = %name, version = %active.version,
                "the active version changed while this one compiled; not swapped in");
            return Ok(());
        }
        self.runtime.registry().activate(prepared)?;
        tracing::info!(%space, function = %name, version = %active.version,
            "version made active on another node; now served here too");
        Ok(())
    }

    /// [`Deployments::follow`] for every function (after notices may have been missed).
    pub async fn follow_all(&self) -> Result<(), DeployError> {
        let known: std::collections::BTreeSet<(String, String)> = self
            .runtime
            .registry()
            .list()
            .into_iter()
            .map(|v| (v.space.clone(), v.name.clone()))
            .chain(self.all()?.into_iter().map(|r| (r.space, r.name)))
            .collect();
        for (space, name) in known {
            if let Err(error) = self.follow(&space, &name).await {
                tracing::error!(%space, function = %name, %error, "could not follow a deploy");
            }
        }
        Ok(())
    }

    fn bundle_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// Writes a bundle once (its name says its content), through a temporary file beside it
    /// and a rename; in a cluster also the cluster's copy, under `sha256` (the caller's hash of
    /// `bytes`).
    fn write_bundle(&self, path: &Path, sha256: &str, bytes: &[u8]) -> Result<(), DeployError> {
        if let Some(shared) = &self.shared_bundles {
            shared.put(sha256, bytes).map_err(store_error)?;
        }
        write_file(path, bytes)
    }
}

/// Writes a bundle's file once (its name says its content), through a temporary file beside
/// it, fsync and a rename.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
    if path.exists() {
        return Ok(());
    }
    let folder = path.parent().ok_or_else(|| store_error("a bundle path has no folder"))?;
    std::fs::create_dir_all(folder).map_err(store_error)?;
    let mut file = tempfile::NamedTempFile::new_in(folder).map_err(store_error)?;
    std::io::Write::write_all(&mut file, bytes).map_err(store_error)?;
    file.as_file().sync_all().map_err(store_error)?;
    file.persist(path).map_err(store_error)?;
    Ok(())
}

fn key(space: &str, name: &str) -> Vec<u8> {
    format!("{space}/{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(version: &str, state: VersionState) -> VersionRecord {
        VersionRecord {
            version: version.into(),
            sha256: format!("sha-of-{version}"),
            size: 1,
            deployed_at: now(),
            deployed_by: None,
            state,
            error: None,
            served: false,
            compiling_on: Some("a".into()),
        }
    }

    fn record(versions: Vec<VersionRecord>) -> FunctionRecord {
        FunctionRecord { space: "default".into(), name: "calc".into(), versions }
    }

    fn states(record: &FunctionRecord) -> Vec<(&str, VersionState)> {
        record.versions.iter().map(|v| (v.version.as_str(), v.state)).collect()
    }

    /// Two servers compiled 3.0.0 and 4.0.0 at once; 4.0.0 was recorded active first. The
    /// server of 3.0.0 saw no active version when it looked and swapped 3.0.0 in: recording it
    /// must not demote 4.0.0.
    #[test]
    fn a_version_compiled_after_a_newer_one_became_active_is_kept_inactive() {
        use VersionState::*;
        let mut record = record(vec![version("3.0.0", Compiling), version("4.0.0", Active)]);
        let settled = record.settle("3.0.0", &Ok(true)).unwrap();
        let Settled::Recorded { version, superseded } = settled else { panic!("{settled:?}") };
        assert_eq!(version.state, Inactive);
        assert!(superseded, "this server swapped 3.0.0 in and must follow the record back");
        assert_eq!(states(&record), [("3.0.0", Inactive), ("4.0.0", Active)]);
        assert_eq!(record.versions[0].compiling_on, None);
    }

    #[test]
    fn a_compiled_version_newer_than_the_active_one_takes_over() {
        use VersionState::*;
        let mut record = record(vec![version("2.0.0", Active), version("3.0.0", Compiling)]);
        let settled = record.settle("3.0.0", &Ok(true)).unwrap();
        let Settled::Recorded { version, superseded } = settled else { panic!("{settled:?}") };
        assert_eq!((version.state, superseded), (Active, false));
        assert_eq!(states(&record), [("2.0.0", Inactive), ("3.0.0", Active)]);
    }

    /// A rollback to an older version while a newer one compiled does not keep the newer one
    /// out: it is newer than what is active.
    #[test]
    fn a_compiled_version_takes_over_from_a_version_rolled_back_to_meanwhile() {
        use VersionState::*;
        let mut record = record(vec![
            version("1.0.0", Active),
            version("2.0.0", Inactive),
            version("3.0.0", Compiling),
        ]);
        record.settle("3.0.0", &Ok(true)).unwrap();
        assert_eq!(states(&record), [("1.0.0", Inactive), ("2.0.0", Inactive), ("3.0.0", Active)]);
    }

    #[test]
    fn a_refused_or_not_activated_version_changes_no_other() {
        use VersionState::*;
        let mut refused = record(vec![version("2.0.0", Active), version("3.0.0", Compiling)]);
        refused.settle("3.0.0", &Err("the trap".into())).unwrap();
        assert_eq!(states(&refused), [("2.0.0", Active), ("3.0.0", Failed)]);
        assert_eq!(refused.versions[1].error.as_deref(), Some("the trap"));

        let mut kept = record(vec![version("3.0.0", Compiling), version("4.0.0", Active)]);
        let settled = kept.settle("3.0.0", &Ok(false)).unwrap();
        let Settled::Recorded { superseded, .. } = settled else { panic!("{settled:?}") };
        assert!(!superseded, "not swapped in here, nothing to undo");
        assert_eq!(states(&kept), [("3.0.0", Inactive), ("4.0.0", Active)]);

        assert!(matches!(kept.settle("9.0.0", &Ok(true)).unwrap(), Settled::Gone));
    }
}
