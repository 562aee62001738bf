//! Every bound an invocation runs under, declared once with its default.
//!
//! Server-wide defaults come from the command line; a function's `function.toml` may override
//! each of them in its `[limits]` table. Nothing else in the crate invents a limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The bounds one function's invocations run under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock time one invocation may take, in milliseconds (default 10 000).
    pub timeout_ms: u64,
    /// Linear memory one instance may grow to, in MiB (default 256).
    pub memory_mb: u64,
    /// Largest request body accepted, in bytes (default 6 MiB, as common FaaS platforms).
    pub max_body_bytes: usize,
    /// Largest response body a function may return, in bytes (default 6 MiB).
    pub max_response_bytes: usize,
    /// stdout, stderr and log lines kept per invocation, in bytes each (default 64 KiB).
    pub max_output_bytes: usize,
    /// Invocations of one function running at once (default 64).
    pub max_concurrency: usize,
    /// Invocations waiting for a free slot before callers get 503 (default 256).
    pub max_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            memory_mb: 256,
            max_body_bytes: 6 * 1024 * 1024,
            max_response_bytes: 6 * 1024 * 1024,
            max_output_bytes: 64 * 1024,
            max_concurrency: 64,
            max_queue: 256,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }

    /// Checks the values make sense, naming the first one that does not.
    pub fn validate(&self, max_memory_mb: u64) -> Result<(), String> {
        if self.timeout_ms == 0 {
            return Err("limits.timeout_ms must be greater than 0".into());
        }
        if self.memory_mb < 32 {
            return Err(format!(
                "limits.memory_mb is {}: a Python function needs at least 32 MiB",
                self.memory_mb
            ));
        }
        if self.memory_mb > max_memory_mb {
            return Err(format!(
                "limits.memory_mb is {} but this server allows at most {max_memory_mb} MiB per instance",
                self.memory_mb
            ));
        }
        if self.max_concurrency == 0 {
            return Err("limits.max_concurrency must be greater than 0".into());
        }
        Ok(())
    }
}

macro_rules! overrides {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// A function's `[limits]` table: each value it names replaces the server's default,
        /// the others keep it.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitOverrides {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl LimitOverrides {
            /// `base` with these overrides applied.
            pub fn apply(&self, base: &Limits) -> Limits {
                Limits { $($field: self.$field.unwrap_or(base.$field)),* }
            }
        }
    };
}

overrides! {
    timeout_ms: u64,
    memory_mb: u64,
    max_body_bytes: usize,
    max_response_bytes: usize,
    max_output_bytes: usize,
    max_concurrency: usize,
    max_queue: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Limits::default().validate(1024).unwrap();
    }

    #[test]
    fn function_toml_overrides_only_what_it_names() {
        let overrides: LimitOverrides = toml::from_str("timeout_ms = 500").unwrap();
        let server = Limits { memory_mb: 512, ..Limits::default() };
        let limits = overrides.apply(&server);
        assert_eq!(limits.timeout(), Duration::from_millis(500));
        assert_eq!(limits.memory_mb, 512, "unnamed limits keep the server's value");
    }

    #[test]
    fn unknown_limit_is_an_error() {
        let error = toml::from_str::<LimitOverrides>("timeout = 5").unwrap_err().to_string();
        assert!(error.contains("unknown field `timeout`"), "{error}");
    }

    #[test]
    fn memory_above_the_engine_maximum_is_refused() {
        let limits = Limits { memory_mb: 2048, ..Limits::default() };
        let error = limits.validate(1024).unwrap_err();
        assert!(error.contains("at most 1024 MiB"), "{error}");
    }
}
