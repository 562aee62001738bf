//! The events a function can be triggered by (`[[events]]` in `function.toml`), with the
//! numeric ids of IXON's platform. Emitting and delivering them is the business of the
//! runtime's `events`.

use serde::{Deserialize, Serialize};

/// The events the platform knows, with their numeric ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    StorageInsert,
    StorageUpdate,
    StorageDelete,
    ObjectPut,
    ObjectDelete,
    /// Reserved: wasmfn has no user logins, so it never emits this.
    AuthLogin,
    /// Reserved: wasmfn has no user registration, so it never emits this.
    AuthRegister,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        Self::StorageInsert,
        Self::StorageUpdate,
        Self::StorageDelete,
        Self::ObjectPut,
        Self::ObjectDelete,
        Self::AuthLogin,
        Self::AuthRegister,
    ];

    pub fn id(self) -> u32 {
        match self {
            Self::StorageInsert => 1000,
            Self::StorageUpdate => 1001,
            Self::StorageDelete => 1002,
            Self::ObjectPut => 1100,
            Self::ObjectDelete => 1101,
            Self::AuthLogin => 2000,
            Self::AuthRegister => 2001,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::StorageInsert => "STORAGE_INSERT",
            Self::StorageUpdate => "STORAGE_UPDATE",
            Self::StorageDelete => "STORAGE_DELETE",
            Self::ObjectPut => "OBJECT_PUT",
            Self::ObjectDelete => "OBJECT_DELETE",
            Self::AuthLogin => "AUTH_LOGIN",
            Self::AuthRegister => "AUTH_REGISTER",
        }
    }

    /// By name (`STORAGE_INSERT`) or id (`1000`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(text) || kind.id().to_string() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown event {text:?} (known: {})", known.join(", "))
            })
    }

    pub fn is_storage(self) -> bool {
        matches!(self, Self::StorageInsert | Self::StorageUpdate | Self::StorageDelete)
    }
}
