//! The function log: lines a function logs during one invocation, kept with its record and
//! bounded in bytes so a chatty function cannot grow host memory.

use serde::Serialize;

/// Severity of a function log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One line a function logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// Log lines of one invocation, up to a byte budget; lines past it are counted, not kept.
#[derive(Debug, Clone, Default)]
pub struct FunctionLog {
    lines: Vec<LogLine>,
    bytes: usize,
    capacity: usize,
    dropped: usize,
}

impl FunctionLog {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, ..Self::default() }
    }

    pub fn push(&mut self, level: Level, message: String) {
        if self.bytes + message.len() > self.capacity {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine { level, message });
    }

    /// The lines kept, followed by a marker line when some were dropped.
    pub fn into_lines(self) -> Vec<LogLine> {
        let mut lines = self.lines;
        if self.dropped > 0 {
            lines.push(LogLine {
                level: Level::Warning,
                message: format!("[wasmfn: {} more log lines not kept]", self.dropped),
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_budget_are_counted_not_kept() {
        let mut log = FunctionLog::new(10);
        log.push(Level::Info, "12345".into());
        log.push(Level::Error, "67890".into());
        log.push(Level::Info, "x".into());
        log.push(Level::Info, "y".into());
        let lines = log.into_lines();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], LogLine { level: Level::Error, message: "67890".into() });
        assert_eq!(lines[2].message, "[wasmfn: 2 more log lines not kept]");
    }
}
