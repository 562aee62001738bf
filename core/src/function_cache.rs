//! Cranelift's incremental compilation cache, kept on disk beside the compiled bundles.
//!
//! Every componentize-py bundle carries the same CPython, its libc and the WASI adapter (the
//! app itself is data), so most of the ~23,000 functions Cranelift compiles for one bundle are
//! functions it has compiled before for any other bundle made by the same componentize-py.
//! With [`wasmtime::Config::enable_incremental_compilation`], Cranelift looks each function up
//! by a hash of its IR (with the target's flags and Cranelift's version) before compiling it,
//! in the store this module keeps. Once a node has compiled one Python bundle, the next one
//! (another app, another version) is mostly lookups: about 3x less compile time
//! (benches/RESULTS.md). The code is the same either way: the bundle tests compare the
//! compiled artifacts byte for byte.
//!
//! On disk: a directory of segments, each written whole by one compile (a temporary file, then
//! a rename): a header (magic, entry count), an index (key, length and digest of each value),
//! then the values. Segments are only ever added or removed, never changed, so several
//! processes (servers sharing a cache directory, `wasmfn build --precompile`) share one
//! directory without locks: each reads the indexes of segments it has not seen before a
//! compile ([`FunctionCache::refresh`]) and reads a value when Cranelift asks for it. A value
//! that cannot be read or whose digest does not match is a miss: Cranelift compiles the
//! function. The directory is bounded: after a compile writes its segment, the least recently
//! used segments (by modification time, which a compile that used a segment renews) are
//! removed until it fits.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// The first bytes of a segment; the last byte is the format's version.
const MAGIC: &[u8; 8] = b"wfnfunc\x01";
const KEY_LEN: usize = 32;
const DIGEST_LEN: usize = 16;
const ENTRY_LEN: usize = KEY_LEN + 4 + DIGEST_LEN;
const HEADER_LEN: usize = MAGIC.len() + 4;
const SEGMENT_EXTENSION: &str = "seg";
const TEMPORARY_PREFIX: &str = ".tmp-";
/// A temporary file older than this was left by a process that died while writing it.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

type Key = [u8; KEY_LEN];

/// The function cache's directory inside a compile cache directory: named after the code
/// generator's revision (the vendored patches change the IR Cranelift is given; Cranelift's
/// own version and the target's flags are in every key) and this format.
pub fn dir_in(cache_dir: &Path) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(crate::bundle::CODEGEN_REVISION);
    hasher.update(MAGIC);
    cache_dir.join(format!("functions-{}", &hex::encode(hasher.finalize())[..12]))
}

/// What the cache has answered since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunctionCacheStats {
    /// Functions Cranelift found compiled.
    pub hits: u64,
    /// Functions Cranelift had to compile.
    pub misses: u64,
}

/// Compiled functions by a hash of their IR, on disk; see the module documentation.
#[derive(Debug)]
pub struct FunctionCache {
    dir: PathBuf,
    max_bytes: u64,
    index: RwLock<Index>,
    pending: Mutex<Pending>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<Key, Location>,
    segments: HashMap<OsString, Arc<Segment>>,
}

/// Values compiled since the last [`FunctionCache::flush`], not on disk yet.
#[derive(Debug, Default)]
struct Pending {
    values: HashMap<Key, Vec<u8>>,
    bytes: u64,
}

#[derive(Debug)]
struct Segment {
    name: OsString,
    file: File,
    /// Served a value since the last flush, which then renews its modification time.
    used: AtomicBool,
}

#[derive(Debug, Clone)]
struct Location {
    segment: Arc<Segment>,
    offset: u64,
    len: u32,
    digest: [u8; DIGEST_LEN],
}

impl FunctionCache {
    /// The cache in `dir` (created if need be), bounded to `max_bytes` on disk.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let cache = Self {
            dir,
            max_bytes,
            index: RwLock::default(),
            pending: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        };
        cache.remove_abandoned_temporaries();
        cache.refresh();
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> FunctionCacheStats {
        FunctionCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Reads the index of every segment written (by any process) since the last refresh, and
    /// forgets the segments that were removed. Call it before a compile.
    pub fn refresh(&self) {
        // Known before listed: a segment this process adds meanwhile is not taken for gone.
        let known: Vec<OsString> = self.read_index().segments.keys().cloned().collect();
        let on_disk = match self.segments_on_disk() {
            Ok(on_disk) => on_disk,
            Err(error) => {
                tracing::warn!(%error, dir = %self.dir.display(), "cannot list the function cache");
                return;
            }
        };
        let gone: Vec<OsString> = known
            .iter()
            .filter(|name| !on_disk.iter().any(|(n, ..)| n == *name))
            .cloned()
            .collect();
        self.forget(&gone);
        for (name, ..) in on_disk.into_iter().filter(|(name, ..)| !known.contains(name)) {
            self.load_segment(name);
        }
    }

    /// Writes the values compiled since the last flush as one segment, renews the modification
    /// time of the segments that served values, and removes the least recently used segments
    /// beyond the bound. Call it after a compile.
    pub fn flush(&self) -> std::io::Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let written = if pending.values.is_empty() {
            None
        } else {
            let name = self.write_segment(&pending.values)?;
            self.load_segment(name.clone());
            Some(name)
        };
        let segments: Vec<Arc<Segment>> = self.read_index().segments.values().cloned().collect();
        for segment in segments.iter().filter(|s| s.used.swap(false, Ordering::Relaxed)) {
            if let Err(error) = segment.file.set_modified(SystemTime::now()) {
                tracing::debug!(%error, "cannot renew a function cache segment's time");
            }
        }
        self.evict(written.as_ref())
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The segments in the directory: name, modification time, size.
    fn segments_on_disk(&self) -> std::io::Result<Vec<(OsString, SystemTime, u64)>> {
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == SEGMENT_EXTENSION) {
                // A segment removed meanwhile (by another process) is simply not listed.
                if let Ok(metadata) = entry.metadata() {
                    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    segments.push((entry.file_name(), modified, metadata.len()));
                }
            }
        }
        Ok(segments)
    }

    /// Adds a segment's entries to the index (keys already known keep their location). A
    /// segment that is not one (wrong magic, lengths that do not add up to its size) is
    /// removed, so that it is not read again.
    fn load_segment(&self, name: OsString) {
        let path = self.dir.join(&name);
        let file = match File::open(&path) {
            Ok(file) => file,
            // Removed by another process since it was listed.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "cannot open a function cache segment");
                return;
            }
        };
        let segment = Arc::new(Segment { name: name.clone(), file, used: AtomicBool::new(false) });
        let entries = match read_segment_index(&segment) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "removing a damaged function cache segment");
                let _ = std::fs::remove_file(&path);
                return;
            }
        };
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        if index.segments.contains_key(&name) {
            return;
        }
        for (key, location) in entries {
            index.entries.entry(key).or_insert(location);
        }
        index.segments.insert(name, segment);
    }

    /// Drops removed segments and their entries from the index.
    fn forget(&self, names: &[OsString]) {
        if names.is_empty() {
            return;
        }
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for name in names {
            index.segments.remove(name);
        }
        index.entries.retain(|_, location| !names.contains(&location.segment.name));
    }

    fn write_segment(&self, values: &HashMap<Key, Vec<u8>>) -> std::io::Result<OsString> {
        let count = u32::try_from(values.len()).map_err(std::io::Error::other)?;
        let mut file = tempfile::Builder::new().prefix(TEMPORARY_PREFIX).tempfile_in(&self.dir)?;
        {
            let mut out = BufWriter::new(file.as_file_mut());
            out.write_all(MAGIC)?;
            out.write_all(&count.to_le_bytes())?;
            for (key, value) in values {
                let len = u32::try_from(value.len()).map_err(std::io::Error::other)?;
                out.write_all(key)?;
                out.write_all(&len.to_le_bytes())?;
                out.write_all(&digest(value))?;
            }
            for value in values.values() {
                out.write_all(value)?;
            }
            out.flush()?;
        }
        let name = OsString::from(format!("{}.{SEGMENT_EXTENSION}", uuid::Uuid::new_v4()));
        file.persist(self.dir.join(&name)).map_err(|e| e.error)?;
        Ok(name)
    }

    /// Removes the least recently used segments until the directory fits its bound; never
    /// the segment this process just wrote.
    fn evict(&self, keep: Option<&OsString>) -> std::io::Result<()> {
        let mut segments = self.segments_on_disk()?;
        let mut total: u64 = segments.iter().map(|(.., size)| size).sum();
        if total <= self.max_bytes {
            return Ok(());
        }
        segments.sort_by_key(|(_, modified, _)| *modified);
        let mut removed = Vec::new();
        for (name, _, size) in segments {
            if total <= self.max_bytes {
                break;
            }
            if Some(&name) == keep {
                continue;
            }
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => {}
                // Another process removed it first: it no longer counts either way.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            total = total.saturating_sub(size);
            removed.push(name);
        }
        tracing::debug!(segments = removed.len(), "evicted function cache segments");
        self.forget(&removed);
        Ok(())
    }

    fn remove_abandoned_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let abandoned = entry.file_name().to_string_lossy().starts_with(TEMPORARY_PREFIX)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|age| age > ABANDONED_AFTER);
            if abandoned {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn lookup(&self, key: &Key) -> Option<Vec<u8>> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = pending.values.get(key) {
            return Some(value.clone());
        }
        drop(pending);
        let location = self.read_index().entries.get(key).cloned()?;
        let mut value = vec![0; location.len as usize];
        location.segment.file.read_exact_at(&mut value, location.offset).ok()?;
        if digest(&value) != location.digest {
            tracing::warn!(segment = ?location.segment.name, "a function cache value does not match its digest; compiling the function");
            return None;
        }
        location.segment.used.store(true, Ordering::Relaxed);
        Some(value)
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let found = Key::try_from(key).ok().and_then(|key| self.lookup(&key));
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let Ok(key) = Key::try_from(key) else { return false };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let len = value.len() as u64;
        // One compile's new functions, held until its flush, stay within the bound too.
        if pending.bytes.saturating_add(len) > self.max_bytes {
            return false;
        }
        if pending.values.insert(key, value).is_none() {
            pending.bytes += len;
        }
        true
    }
}

fn digest(value: &[u8]) -> [u8; DIGEST_LEN] {
    let full = Sha256::digest(value);
    let mut digest = [0; DIGEST_LEN];
    digest.copy_from_slice(&full[..DIGEST_LEN]);
    digest
}

/// A segment's entries, checked against its size.
fn read_segment_index(segment: &Arc<Segment>) -> std::io::Result<Vec<(Key, Location)>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let size = segment.file.metadata()?.len();
    let mut header = [0; HEADER_LEN];
    segment.file.read_exact_at(&mut header, 0).map_err(|_| invalid("shorter than a header"))?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(invalid("not a function cache segment"));
    }
    let count = u32::from_le_bytes(header[MAGIC.len()..].try_into().expect("4 bytes")) as u64;
    let index_len = count * ENTRY_LEN as u64;
    if HEADER_LEN as u64 + index_len > size {
        return Err(invalid("its index is longer than the file"));
    }
    let mut raw = vec![0; index_len as usize];
    segment.file.read_exact_at(&mut raw, HEADER_LEN as u64)?;
    let mut offset = HEADER_LEN as u64 + index_len;
    let mut entries = Vec::with_capacity(count as usize);
    for entry in raw.chunks_exact(ENTRY_LEN) {
        let key: Key = entry[..KEY_LEN].try_into().expect("key length");
        let len = u32::from_le_bytes(entry[KEY_LEN..KEY_LEN + 4].try_into().expect("4 bytes"));
        let digest = entry[KEY_LEN + 4..].try_into().expect("digest length");
        entries.push((key, Location { segment: segment.clone(), offset, len, digest }));
        offset += u64::from(len);
    }
    if offset != size {
        return Err(invalid("its values do not add up to its size"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use wasmtime::CacheStore;

    use super::*;

    fn key(n: u8) -> Vec<u8> {
        vec![n; KEY_LEN]
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXTENSION))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn values_are_served_before_and_after_their_flush_and_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cache.get(&key(1)), None);
        assert!(cache.insert(&key(1), b"one".to_vec()));
        assert!(cache.insert(&key(2), b"two, longer".to_vec()));
        // The same compile finds what it inserted (CPython has identical functions).
        assert_eq!(cache.get(&key(1)).as_deref(), Some(&b"one"[..]));
        assert!(segments(dir.path()).is_empty(), "nothing is written before the flush");
        cache.flush().unwrap();
        assert_eq!(segments(dir.path()).len(), 1);
        assert_eq!(cache.get(&key(2)).as_deref(), Some(&b"two, longer"[..]));
        assert_eq!(cache.stats(), FunctionCacheStats { hits: 2, misses: 1 });

        // Another process sharing the directory: what it opens, and what it sees on refresh.
        let other = FunctionCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(other.get(&key(1)).as_deref(), Some(&b"one"[..]));
        assert!(cache.insert(&key(3), b"three".to_vec()));
        cache.flush().unwrap();
        assert_eq!(other.get(&key(3)), None, "not refreshed yet");
        other.refresh();
        assert_eq!(other.get(&key(3)).as_deref(), Some(&b"three"[..]));
        // A flush with nothing new writes nothing.
        other.flush().unwrap();
        assert_eq!(segments(dir.path()).len(), 2);
        // Keys that are not Cranelift's 32-byte hashes are refused.
        assert!(!cache.insert(b"short", b"x".to_vec()));
        assert_eq!(cache.get(b"short"), None);
    }

    #[test]
    fn a_damaged_value_is_a_miss_and_a_damaged_segment_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::open(dir.path(), 1 << 20).unwrap();
        cache.insert(&key(1), b"first value".to_vec());
        cache.flush().unwrap();
        let path = segments(dir.path()).remove(0);
        // Flip the last byte: the value's bytes, not its length.
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let reader = FunctionCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reader.get(&key(1)), None, "a value that fails its digest is not served");

        // A truncated segment (its values do not add up) and a foreign file are removed.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let foreign = dir.path().join("foreign.seg");
        std::fs::write(&foreign, b"not a segment at all").unwrap();
        let reader = FunctionCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reader.get(&key(1)), None);
        assert!(segments(dir.path()).is_empty());
    }

    #[test]
    fn the_least_recently_used_segments_go_when_the_directory_outgrows_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let value = vec![7u8; 400];
        // Room for two segments of one 400-byte value each, not three.
        let cache = FunctionCache::open(dir.path(), 1000).unwrap();
        let age = |name: &Path, seconds: u64| {
            let file = File::options().write(true).open(name).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(seconds)).unwrap();
        };
        cache.insert(&key(1), value.clone());
        cache.flush().unwrap();
        let first = segments(dir.path()).remove(0);
        age(&first, 300);
        cache.insert(&key(2), value.clone());
        cache.flush().unwrap();
        let second = segments(dir.path()).into_iter().find(|p| *p != first).unwrap();
        age(&second, 200);
        // The older segment serves a value: the flush after it makes it the most recent.
        assert!(cache.get(&key(1)).is_some());
        cache.insert(&key(3), value.clone());
        cache.flush().unwrap();
        let left = segments(dir.path());
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&first), "the segment just used stays");
        assert!(!left.contains(&second), "the least recently used one goes");
        assert_eq!(cache.get(&key(2)), None, "its entries are forgotten");
        assert!(cache.get(&key(3)).is_some());

        // What one compile holds until its flush is bounded too.
        assert!(!cache.insert(&key(4), vec![0; 1001]));
    }
}
