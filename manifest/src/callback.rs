//! Callback URLs, as triggers declare them (`callback_url` of `[[cron]]` and `[[mqtt]]`) and as
//! callers send them (`X-Callback-Url`): absolute `http` or `https` with a host. Which
//! addresses a delivery may reach is checked when it is made (the runtime's `delivery`).

use serde::{Deserialize, Serialize};

/// Checks a callback URL: absolute `http` or `https` with a host.
pub fn parse_callback_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("callback URL '{text}' is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "callback URL '{text}' must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// A callback URL: absolute `http` or `https`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallbackUrl(pub url::Url);

impl TryFrom<String> for CallbackUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse_callback_url(&text).map(CallbackUrl)
    }
}

impl From<CallbackUrl> for String {
    fn from(url: CallbackUrl) -> String {
        url.0.into()
    }
}
