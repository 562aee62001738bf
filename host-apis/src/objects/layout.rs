//! How keys become paths in the store. Object stores such as S3 take any key as it is
//! ([`KeyLayout::Plain`]). A filesystem does not: a file name is at most 255 bytes, and `a` (a
//! file) and `a/b` (which needs a directory `a`) cannot both exist. [`KeyLayout::Filesystem`]
//! therefore encodes every key part:
//!
//! - bytes other than ASCII letters, digits, `-`, `_` and `.` are escaped as `=XX`, so a part
//!   never holds `!` or `+` of its own;
//! - the key's last part (the file) ends with `!`, directories do not, so `a!` and `a/` differ;
//! - a part longer than [`MAX_CHUNK`] bytes once escaped is cut into directories ending with
//!   `+` (continued in the next level), keeping every name well under 255 bytes.
//!
//! Decoding a stored path gives the key back exactly, so listings need no second lookup; paths
//! that do not decode (an upload being staged, foreign files) are not objects.

/// How keys are laid out as store paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyLayout {
    /// Key parts are path parts (memory, S3).
    #[default]
    Plain,
    /// Key parts are encoded for a filesystem (see the module documentation).
    Filesystem,
}

/// The most bytes of an escaped key part in one file or directory name (the store adds a
/// staging suffix while writing; 255 is the usual limit).
const MAX_CHUNK: usize = 200;
/// Ends the name of the key's last part: the object's file.
const LEAF: char = '!';
/// Ends a name continued in the next directory level (a long part).
const CONTINUED: char = '+';

fn passes(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')
}

/// `part` escaped and cut into names of at most [`MAX_CHUNK`] bytes (before their marker).
fn chunks(part: &str) -> Vec<String> {
    let mut chunks = vec![String::new()];
    for byte in part.bytes() {
        let piece = if passes(byte) { (byte as char).to_string() } else { format!("={byte:02X}") };
        if chunks.last().is_some_and(|c| c.len() + piece.len() > MAX_CHUNK) {
            chunks.push(String::new());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.push_str(&piece);
        }
    }
    chunks
}

/// Appends the bytes `escaped` stands for; `None` if it is not an escaped name.
fn unescape(escaped: &str, out: &mut Vec<u8>) -> Option<()> {
    let bytes = escaped.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = escaped.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if passes(bytes[i]) {
            out.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    Some(())
}

impl KeyLayout {
    /// The path parts for `key`: an object's key (`leaf`), or a directory (a key's leading
    /// parts, possibly none).
    pub fn parts(self, key: &str, leaf: bool) -> Vec<String> {
        let parts = key.split('/').filter(|p| !p.is_empty());
        match self {
            Self::Plain => parts.map(str::to_string).collect(),
            Self::Filesystem => {
                let parts: Vec<&str> = parts.collect();
                let mut out = Vec::new();
                for (i, part) in parts.iter().enumerate() {
                    let mut chunks = chunks(part);
                    let last = chunks.pop().unwrap_or_default();
                    out.extend(chunks.into_iter().map(|c| format!("{c}{CONTINUED}")));
                    let is_leaf = leaf && i + 1 == parts.len();
                    out.push(if is_leaf { format!("{last}{LEAF}") } else { last });
                }
                out
            }
        }
    }

    /// The key stored at `parts` (path parts below the area's root, as decoded from the
    /// store), or `None` when they name no object.
    pub fn key<'a>(self, parts: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let parts: Vec<&str> = parts.into_iter().collect();
        match self {
            Self::Plain => (!parts.is_empty()).then(|| parts.join("/")),
            Self::Filesystem => {
                let mut key = Vec::new();
                let (last, directories) = parts.split_last()?;
                for part in directories {
                    if let Some(continued) = part.strip_suffix(CONTINUED) {
                        unescape(continued, &mut key)?;
                    } else {
                        unescape(part, &mut key)?;
                        key.push(b'/');
                    }
                }
                unescape(last.strip_suffix(LEAF)?, &mut key)?;
                String::from_utf8(key).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(key: &str) -> Vec<String> {
        let parts = KeyLayout::Filesystem.parts(key, true);
        let back = KeyLayout::Filesystem.key(parts.iter().map(String::as_str));
        assert_eq!(back.as_deref(), Some(key), "{parts:?}");
        parts
    }

    #[test]
    fn every_key_comes_back_from_its_parts() {
        for key in ["a", "a/b", "reports/2026/11.csv", "with space.txt", "ünïcode/€", "a=b!c+d"]
        {
            round_trip(key);
        }
        let long = format!("{}/{}", "é".repeat(150), "x".repeat(1000));
        let parts = round_trip(&long);
        assert!(parts.iter().all(|p| p.len() <= MAX_CHUNK + 1), "{parts:?}");
    }

    #[test]
    fn a_file_and_a_directory_of_the_same_name_differ() {
        let file = KeyLayout::Filesystem.parts("a", true);
        let directory = KeyLayout::Filesystem.parts("a/b", true);
        assert_ne!(file[0], directory[0]);
        assert_eq!(KeyLayout::Filesystem.parts("a", false), directory[..1]);
    }

    #[test]
    fn paths_that_are_no_object_do_not_decode() {
        for parts in [&["a"][..], &["a!", "b!"], &["a=zz!"], &["a#1!"], &[]] {
            assert_eq!(KeyLayout::Filesystem.key(parts.iter().copied()), None, "{parts:?}");
        }
    }
}
