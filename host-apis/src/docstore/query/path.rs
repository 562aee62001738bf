//! Dotted field paths (`a.b.0.c`): parsing, the query-side lookup that fans out over arrays
//! (every value a filter or sort looks at, with the array index that led to it), and strict
//! lookup for updates (numeric components index arrays, nothing else traverses them).

use serde_json::{Map, Value};

use super::QueryError;

/// The most components a path may have (MongoDB's documents nest at most 100 levels).
pub(crate) const MAX_PATH_COMPONENTS: usize = 100;

/// A parsed dotted path: at least one component, none empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(Vec<String>);

impl Path {
    pub(crate) fn parse(path: &str) -> Result<Path, QueryError> {
        if path.is_empty() {
            return Err(QueryError::new("An empty path is not valid"));
        }
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(QueryError::new(format!(
                "The path '{path}' contains an empty field name, which is not allowed"
            )));
        }
        if parts.len() > MAX_PATH_COMPONENTS {
            return Err(QueryError::new(format!(
                "The path '{path}' has more than {MAX_PATH_COMPONENTS} components"
            )));
        }
        Ok(Path(parts))
    }

    pub(crate) fn parts(&self) -> &[String] {
        &self.0
    }

    pub(crate) fn is_simple(&self, name: &str) -> bool {
        self.0.len() == 1 && self.0[0] == name
    }

    /// This path with its `$` component replaced by `index`.
    pub(crate) fn with_position(&self, index: usize) -> Path {
        let parts = self.0.iter().map(|p| if p == "$" { index.to_string() } else { p.clone() });
        Path(parts.collect())
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// The array index a path component names: digits only, no leading zero.
pub(crate) fn array_index(part: &str) -> Option<usize> {
    let digits = part.bytes().all(|b| b.is_ascii_digit());
    if !digits || part.is_empty() || (part.len() > 1 && part.starts_with('0')) {
        return None;
    }
    part.parse().ok()
}

/// One place a query path led to: a value, or nothing there (`value` none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaf<'a> {
    pub value: Option<&'a Value>,
    /// The index into the first array the path went through by element, if any.
    pub position: Option<usize>,
}

/// Every value `path` reaches in `doc`, MongoDB-style: arrays along the way are entered element
/// by element (and by index for numeric components). Always yields at least one leaf; a missing
/// field yields a leaf without value.
pub(crate) fn leaves<'a>(doc: &'a Map<String, Value>, path: &Path) -> Vec<Leaf<'a>> {
    let mut out = Vec::new();
    in_document(doc, path.parts(), None, &mut out);
    out
}

fn in_document<'a>(
    doc: &'a Map<String, Value>,
    path: &[String],
    position: Option<usize>,
    out: &mut Vec<Leaf<'a>>,
) {
    match path.split_first().and_then(|(first, rest)| Some((doc.get(first)?, rest))) {
        Some((value, rest)) => in_value(value, rest, position, out),
        None => out.push(Leaf { value: None, position }),
    }
}

fn in_value<'a>(
    value: &'a Value,
    path: &[String],
    position: Option<usize>,
    out: &mut Vec<Leaf<'a>>,
) {
    let Some(first) = path.first() else {
        out.push(Leaf { value: Some(value), position });
        return;
    };
    match value {
        Value::Object(doc) => in_document(doc, path, position, out),
        Value::Array(items) => {
            let before = out.len();
            if let Some(item) = array_index(first).and_then(|i| items.get(i)) {
                in_value(item, &path[1..], position, out);
            }
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(doc) = item {
                    in_document(doc, path, position.or(Some(i)), out);
                }
            }
            if out.len() == before {
                out.push(Leaf { value: None, position });
            }
        }
        _ => out.push(Leaf { value: None, position }),
    }
}

/// The value at `path`, strictly: objects by field, arrays only by numeric index.
pub(crate) fn get<'a>(doc: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut current = doc.get(first)?;
    for part in rest {
        current = match current {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(array_index(part)?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Like [`get`], mutably.
pub(crate) fn get_mut<'a>(
    doc: &'a mut Map<String, Value>,
    path: &[String],
) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let mut current = doc.get_mut(first)?;
    for part in rest {
        current = match current {
            Value::Object(map) => map.get_mut(part)?,
            Value::Array(items) => items.get_mut(array_index(part)?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Whether reaching `path` strictly goes through an array (the last component excluded).
pub(crate) fn crosses_array(doc: &Map<String, Value>, path: &[String]) -> bool {
    (1..path.len()).any(|end| matches!(get(doc, &path[..end]), Some(Value::Array(_))))
}
