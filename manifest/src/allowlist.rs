//! The endpoints a function may call: `[ixon_api] allow = ["AgentList", "GET MyUser"]` in its
//! `function.toml`. An entry is a discovery URL name, optionally preceded by one HTTP method;
//! `"*"` allows every endpoint. No entries: no IXON API access at all (the default of a
//! function.toml; a folder without one gets `"*"`, as IXON's platform allows).

/// A parsed allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<(Option<String>, String)>,
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl Allowlist {
    /// Parses entries; the error names the first one that is not `NAME` or `METHOD NAME`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let parts: Vec<&str> = entry.split_whitespace().collect();
            let item = match parts.as_slice() {
                [name] => (None, name.to_string()),
                [method, name] if METHODS.contains(&method.to_ascii_uppercase().as_str()) => {
                    (Some(method.to_ascii_uppercase()), name.to_string())
                }
                _ => {
                    return Err(format!(
                        "ixon_api.allow entry {entry:?} is not an endpoint name or \"METHOD name\" \
                         (METHOD one of {})",
                        METHODS.join(", ")
                    ))
                }
            };
            parsed.push(item);
        }
        Ok(Self { entries: parsed })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn allows(&self, method: &str, url_name: &str) -> bool {
        self.entries.iter().any(|(allowed_method, name)| {
            (name == "*" || name == url_name)
                && allowed_method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_allow_names_and_methods() {
        let list = Allowlist::parse(&["AgentList", "get MyUser"]).unwrap();
        assert!(list.allows("GET", "AgentList") && list.allows("DELETE", "AgentList"));
        assert!(list.allows("GET", "MyUser") && !list.allows("POST", "MyUser"));
        assert!(!list.allows("GET", "CompanyList"));
        assert!(!Allowlist::default().allows("GET", "AgentList"), "empty allows nothing");
        assert!(Allowlist::parse(&["*"]).unwrap().allows("PATCH", "Anything"));
        assert!(Allowlist::parse(&["FETCH MyUser"]).unwrap_err().contains("FETCH MyUser"));
        assert!(Allowlist::parse(&["GET"]).is_ok(), "a bare word is a name");
    }
}
