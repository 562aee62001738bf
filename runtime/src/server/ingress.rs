//! The ixoncdkingress-compatible endpoint: `POST /spaces/<space>/functions/<function>/ingress`
//! (and `POST /` with `--ingress-root`) takes the JSON call format IXON's platform sends:
//! `{"name", "arguments", "config", "context", "internalConfig", "created_on"}`.
//!
//! Differences from the original, on purpose: unknown functions get 404 (not 200 with a
//! "Not found" string) and exceptions 500 with a JSON body (not an empty 500), and a call whose
//! `config` names a secret of the function (`[secrets]`, or one set through the admin API) is
//! refused with 400 `secret_override`: callers never replace secrets.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::invoke::{header_pairs, receive, respond};
use crate::error::InvokeError;
use crate::error_response::ErrorResponse;
use crate::invoker::{AccessToken, Caller, Invocation, RequestData, Resource};
use crate::server::ServerContext;

/// One call in the ixoncdkingress JSON format.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressCall {
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub context: Map<String, Value>,
    #[serde(default)]
    pub internal_config: Option<Value>,
    #[serde(default, rename = "created_on")]
    pub created_on: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContextResource {
    public_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    custom: Option<Map<String, Value>>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// `POST /spaces/<space>/functions/<function>/ingress`.
pub async fn ingress(
    State(state): State<ServerContext>,
    Path((space, function)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    call(state, space, function, request).await
}

/// `POST /` when the server was started with `--ingress-root <function>`.
pub async fn ingress_root(
    State(state): State<ServerContext>,
    request: axum::extract::Request,
) -> Response {
    match state.ingress_root.clone() {
        Some((space, function)) => call(state, space, function, request).await,
        None => InvokeError::NotFound(
            "nothing is served at /: start the server with --ingress-root <function>".into(),
        )
        .into_response(),
    }
}

async fn call(
    state: ServerContext,
    space: String,
    function: String,
    request: axum::extract::Request,
) -> Response {
    if request.method() != Method::POST {
        return InvokeError::MethodNotAllowed {
            method: request.method().to_string(),
            allow: "POST",
        }
        .into_response();
    }
    // Signed calls come from the IXON platform: the signature is their authorization, and
    // vouches for the caller in the body. Unsigned ones follow the function's access.
    let signed = state.access.ingress.enabled();
    let (version, parts, body, key_caller) =
        match receive(&state, &space, &function, request, !signed).await {
            Ok(received) => received,
            Err(error) => return error.into_response(),
        };
    let (mut invocation, created_on) = match parse_call(&body) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    // Signed or not, a call's config never replaces a secret of the function.
    if let Err(error) = state.invoker.check_caller_config(&version, &invocation.config) {
        return error.into_response();
    }
    if signed {
        let now = chrono::Utc::now();
        let checked = state
            .access
            .ingress
            .verify(
                &parts.headers,
                &body,
                created_on.as_deref(),
                (space.as_str(), function.as_str()),
                now,
            )
            .and_then(|verified| state.access.seen.accept_once(&verified, now.timestamp()));
        if let Err(error) = checked {
            return error.into_response();
        }
    }
    if let Some(caller) = key_caller {
        invocation.caller = caller;
    }
    invocation.space = space;
    invocation.function = function;
    invocation.request = RequestData {
        method: "POST".into(),
        path: "/".into(),
        query: Vec::new(),
        headers: header_pairs(&parts.headers),
        body,
    };
    respond(&state, version, invocation).await
}

/// Parses the JSON call format into an invocation (space and function left empty) and the
/// call's `created_on`.
pub fn parse_call(body: &[u8]) -> Result<(Invocation, Option<String>), InvokeError> {
    let call: IngressCall = serde_json::from_slice(body).map_err(|error| {
        InvokeError::BadRequest(format!("request body is not an ixoncdkingress call: {error}"))
    })?;
    let name = call
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| InvokeError::BadRequest("the call has no \"name\" of a function".into()))?;
    let arguments = match call.arguments {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments,
        Some(other) => {
            return Err(InvokeError::BadArguments(format!(
                "\"arguments\" must be a JSON object, not {}",
                json_type(&other)
            )))
        }
    };
    let config: BTreeMap<String, Value> = call.config.into_iter().collect();
    let invocation = Invocation {
        entry: Some(name),
        arguments: arguments.into(),
        trigger: "ixon".into(),
        caller: parse_caller(&call.context)?,
        config,
        ..Invocation::default()
    };
    Ok((invocation, call.created_on))
}

fn parse_caller(context: &Map<String, Value>) -> Result<Caller, InvokeError> {
    let resource = |key: &str| -> Result<Option<Resource>, InvokeError> {
        match context.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => {
                let parsed: ContextResource =
                    serde_json::from_value(value.clone()).map_err(|error| {
                        InvokeError::BadRequest(format!("context.{key} is not a resource: {error}"))
                    })?;
                // The company's id names the database its documents live in: bounded, so that
                // a caller cannot make the store keep arbitrarily long names.
                if key == "company"
                    && !wasmfn_host_apis::docstore::is_database_name(&parsed.public_id)
                {
                    return Err(InvokeError::BadRequest(format!(
                        "context.company.publicId must be 1 to {} bytes",
                        wasmfn_host_apis::docstore::MAX_NAME_BYTES
                    )));
                }
                // As ixoncdkingress: company, agent and asset always carry a permission set.
                let permissions = match key {
                    "company" | "agent" | "asset" => Some(parsed.permissions.unwrap_or_default()),
                    _ => parsed.permissions,
                };
                Ok(Some(Resource {
                    public_id: parsed.public_id,
                    name: parsed.name,
                    custom: parsed.custom.unwrap_or_default(),
                    permissions,
                }))
            }
        }
    };
    Ok(Caller {
        user: resource("user")?,
        company: resource("company")?,
        agent: resource("agent")?,
        asset: resource("asset")?,
        template: resource("template")?,
        api_application: resource("apiApplication")?,
        access_token: access_token(context)?,
    })
}

/// `context.accessToken.headerValue`, as ixoncdkingress reads it.
fn access_token(context: &Map<String, Value>) -> Result<Option<AccessToken>, InvokeError> {
    match context.get("accessToken") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(token)) => match token.get("headerValue") {
            Some(Value::String(value)) if !value.is_empty() => Ok(Some(AccessToken(value.clone()))),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(InvokeError::BadRequest(
                "context.accessToken.headerValue must be a string".into(),
            )),
        },
        Some(other) => Err(InvokeError::BadRequest(format!(
            "context.accessToken must be an object with headerValue, not {}",
            json_type(other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_ixon_call_format() {
        let body = json!({
            "name": "example.greet",
            "arguments": {"name": "Ada"},
            "config": {"greeting": "Hi", "n": 3},
            "context": {
                "user": {"publicId": "u1", "name": "Ada", "custom": {}},
                "company": {"publicId": "c1", "name": "ACME", "custom": {"tier": "gold"}, "permissions": ["MANAGE"]},
                "accessToken": {"headerValue": "Bearer x"}
            },
            "created_on": "2026-11-23T00:00:00+00:00"
        });
        let (invocation, _) = parse_call(body.to_string().as_bytes()).unwrap();
        assert_eq!(invocation.entry.as_deref(), Some("example.greet"));
        assert_eq!(invocation.arguments.to_map()["name"], "Ada");
        assert_eq!(invocation.config["n"], 3, "config values stay JSON");
        let company = invocation.caller.company.clone().unwrap();
        assert_eq!(company.public_id, "c1");
        assert_eq!(company.custom["tier"], "gold");
        assert_eq!(company.permissions, Some(vec!["MANAGE".to_string()]));
        assert!(invocation.caller.agent.is_none());
        assert_eq!(invocation.caller.access_token, Some(AccessToken("Bearer x".into())));
        assert!(!format!("{:?}", invocation.caller).contains("Bearer x"), "token never in Debug");
    }

    #[test]
    fn a_company_id_that_cannot_name_a_database_is_rejected() {
        let call = |id: &str| {
            let body =
                json!({"name": "f.g", "context": {"company": {"publicId": id, "name": "x"}}});
            parse_call(body.to_string().as_bytes())
        };
        assert!(call(&"c".repeat(64)).is_ok());
        for id in ["c".repeat(65), String::new(), "c".repeat(5 << 20)] {
            let error = call(&id).unwrap_err();
            assert!(matches!(error, InvokeError::BadRequest(_)), "{error}");
            assert!(error.to_string().contains("publicId must be 1 to 64 bytes"), "{error}");
        }
    }

    #[test]
    fn missing_name_and_bad_arguments_are_rejected() {
        let error = parse_call(br#"{"arguments": {}}"#).unwrap_err();
        assert!(error.to_string().contains("\"name\""), "{error}");
        let error = parse_call(br#"{"name": "f", "arguments": [1]}"#).unwrap_err();
        assert_eq!(error.code(), "bad_arguments");
        let error = parse_call(b"not json").unwrap_err();
        assert_eq!(error.code(), "bad_request");
    }
}
