//! The synchronous HTTP trigger: `/spaces/<space>/functions/<function>[:<entry>]/invoke[/a/b/c]`.
//!
//! Query parameters and a JSON (or form) body become keyword arguments; the whole request is
//! passed to the function as `context.request`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use crate::access::KEY_HEADER;
use crate::arguments::Arguments;
use crate::error::InvokeError;
use crate::error_response::ErrorResponse;
use crate::invoker::{Caller, Invocation, Outcome, RequestData};
use crate::registry::FunctionVersion;
use crate::server::ServerContext;

/// Methods the invoke endpoint accepts, as in the reference platform.
pub const INVOKE_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// How many path levels may follow `/invoke`.
pub const MAX_CUSTOM_PATH_LEVELS: usize = 3;

/// `…/invoke` with no custom path.
pub async fn invoke_root(
    State(state): State<ServerContext>,
    Path((space, function)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    invoke(state, space, function, String::new(), request).await
}

/// `…/invoke/<custom path>`.
pub async fn invoke_with_path(
    State(state): State<ServerContext>,
    Path((space, function, rest)): Path<(String, String, String)>,
    request: axum::extract::Request,
) -> Response {
    invoke(state, space, function, rest, request).await
}

async fn invoke(
    state: ServerContext,
    space: String,
    function: String,
    rest: String,
    request: axum::extract::Request,
) -> Response {
    let method = request.method().clone();
    if ![Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(&method) {
        return InvokeError::MethodNotAllowed { method: method.to_string(), allow: INVOKE_METHODS }
            .into_response();
    }
    let custom_path = match custom_path(&rest) {
        Some(path) => path,
        None => {
            return InvokeError::NotFound(format!(
                "a custom path may have at most {MAX_CUSTOM_PATH_LEVELS} levels after /invoke"
            ))
            .into_response()
        }
    };
    let (function, entry) = split_entry(&function);
    let (version, parts, body, caller) =
        match receive(&state, &space, &function, request, true).await {
            Ok(received) => received,
            Err(error) => return error.into_response(),
        };
    let query = parse_query(parts.uri.query());
    let arguments = match arguments(&query, &parts.headers, &body) {
        Ok(arguments) => arguments,
        Err(error) => return error.into_response(),
    };
    let invocation = Invocation {
        space,
        function,
        entry,
        arguments,
        request: RequestData {
            method: method.to_string(),
            path: custom_path,
            query,
            headers: header_pairs(&parts.headers),
            body,
        },
        trigger: "http".into(),
        caller: caller.unwrap_or_default(),
        ..Invocation::default()
    };
    respond(&state, version, invocation).await
}

/// What [`receive`] hands on: the version, the request head and body, and the caller an API
/// key names.
pub type Received =
    (Arc<FunctionVersion>, axum::http::request::Parts, bytes::Bytes, Option<Caller>);

/// Resolves the function first, checks the caller may invoke it (`check_access`) before a byte
/// of the body is read, then reads the body under the function's own limit.
pub async fn receive(
    state: &ServerContext,
    space: &str,
    function: &str,
    request: axum::extract::Request,
    check_access: bool,
) -> Result<Received, InvokeError> {
    let version = state.invoker.registry().get(space, function)?;
    let headers = request.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    let depth = crate::delivery::request_depth(headers);
    if depth > crate::delivery::MAX_CALLBACK_DEPTH {
        return Err(InvokeError::CallbackLoop { depth, max: crate::delivery::MAX_CALLBACK_DEPTH });
    }
    let (parts, body) = request.into_parts();
    let caller = if check_access {
        state.access.check(&parts.headers, space, state.access.policy(version.access))?
    } else {
        None
    };
    let body = read_body(body, &parts.headers, version.limits.max_body_bytes).await?;
    Ok((version, parts, body, caller))
}

/// Runs an invocation and turns its outcome into the HTTP response.
pub async fn respond(
    state: &ServerContext,
    version: Arc<FunctionVersion>,
    invocation: Invocation,
) -> Response {
    let outcome = state.invoker.invoke_version(version, invocation).await;
    outcome_response(outcome)
}

/// The HTTP response for an outcome: the function's own, or a JSON error.
pub fn outcome_response(outcome: Outcome) -> Response {
    let id = HeaderValue::from_str(&outcome.id.to_string()).expect("uuid is a header value");
    let mut response = match outcome.result {
        Ok(function_response) => {
            let Ok(status) = StatusCode::from_u16(function_response.status) else {
                return InvokeError::Trap(format!(
                    "the function returned an invalid HTTP status {}",
                    function_response.status
                ))
                .into_response();
            };
            let mut response = Response::new(Body::from(function_response.body));
            *response.status_mut() = status;
            copy_function_headers(&function_response.headers, response.headers_mut());
            response.headers_mut().append(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(FUNCTION_ANSWER_POLICY),
            );
            response.extensions_mut().insert(crate::rejections::FunctionAnswer);
            response
        }
        Err(error) => error.into_response(),
    };
    response.headers_mut().insert("x-invocation-id", id);
    response
}

/// Added to every function's answer (besides any policy of its own, which still applies): a
/// page a function returns runs in an opaque origin of its own, not the server's, so its
/// scripts cannot use the console's session (its cookie is not sent from there, and the
/// console's answers cannot be read) even though both are served from one address.
pub const FUNCTION_ANSWER_POLICY: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-downloads allow-modals";

fn copy_function_headers(pairs: &[(String, String)], headers: &mut HeaderMap) {
    for (name, value) in pairs {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        else {
            tracing::debug!(header = %name, "dropping a response header that is not valid HTTP");
            continue;
        };
        // The server frames the body itself; a function cannot override that.
        if [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(&name) {
            continue;
        }
        // Nor may it set (or clear) an operator's console session.
        if name == header::SET_COOKIE && crate::access::console::sets_session_cookie(&value) {
            tracing::warn!("dropping a function's Set-Cookie of the console's session cookie");
            continue;
        }
        headers.append(name, value);
    }
}

/// `a/b/c` → `/a/b/c`; `None` when there are more than three levels.
pub fn custom_path(rest: &str) -> Option<String> {
    let levels = rest.split('/').filter(|s| !s.is_empty()).count();
    if levels > MAX_CUSTOM_PATH_LEVELS {
        return None;
    }
    Some(format!("/{}", rest.trim_start_matches('/')))
}

/// `name:module.entry` → (`name`, `Some("module.entry")`).
pub fn split_entry(segment: &str) -> (String, Option<String>) {
    match segment.split_once(':') {
        Some((name, entry)) if !entry.is_empty() => (name.to_string(), Some(entry.to_string())),
        Some((name, _)) => (name.to_string(), None),
        None => (segment.to_string(), None),
    }
}

/// Reads the body, refusing it with 413 as soon as it is known to exceed `limit`.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, InvokeError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(InvokeError::BodyTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            InvokeError::BodyTooLarge { limit }
        } else if crate::body_deadline::is_timeout(&error) {
            InvokeError::RequestTimeout(error.to_string())
        } else {
            InvokeError::BadRequest(format!("could not read the request body: {error}"))
        }
    })
}

pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// The request headers a function sees: all but the credentials (`Authorization`, the API key
/// header, the console's session cookie), which are the platform's business. A browser signed
/// in to the console sends its session cookie to every path of the server, function URLs too:
/// a function must never see it, or its author could act as the operator.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION && name.as_str() != KEY_HEADER)
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            if *name == header::COOKIE {
                let kept = crate::access::console::without_session_cookie(value);
                return (!kept.is_empty()).then(|| (name.as_str().to_string(), kept));
            }
            Some((name.as_str().to_string(), value.to_string()))
        })
        .collect()
}

/// Keyword arguments from the query (first value of each name) and the body.
///
/// A JSON body must be an object to contribute arguments; its keys override the query's. A
/// form body contributes its fields. Other bodies reach the function only as
/// `context.request.body`. A JSON object body is passed on as it came, checked but not parsed
/// into a map and written again (a 100 KB body costs no tree on the host).
pub fn arguments(
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Arguments, InvokeError> {
    let mut arguments = Map::new();
    for (name, value) in query {
        arguments.entry(name.clone()).or_insert_with(|| Value::String(value.clone()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let is_json =
        content_type.as_deref().is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    let is_form = content_type.as_deref() == Some("application/x-www-form-urlencoded");
    let looks_like_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    // `curl -d '{...}'` sends JSON labelled as a form: treat an object-shaped body as JSON.
    if is_json || ((is_form || content_type.is_none()) && looks_like_object) {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(arguments.into());
        }
        let object = Arguments::from_json_text(body).map_err(|error| {
            InvokeError::BadRequest(format!("request body is not valid JSON: {error}"))
        })?;
        if let Some(object) = object {
            return Ok(object.over(&arguments));
        }
    } else if is_form {
        for (name, value) in form_urlencoded::parse(body) {
            arguments.insert(name.into_owned(), Value::String(value.into_owned()));
        }
    }
    Ok(arguments.into())
}

#[cfg(test)]
#[path = "invoke_proptests.rs"]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn function_answers_cannot_set_the_console_session_cookie() {
        let pairs = vec![
            ("set-cookie".to_string(), "wasmfn_console=attacker; Path=/".to_string()),
            ("set-cookie".to_string(), "theme=dark".to_string()),
        ];
        let mut headers = HeaderMap::new();
        copy_function_headers(&pairs, &mut headers);
        let set: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(set, vec![HeaderValue::from_static("theme=dark")]);
    }

    #[test]
    fn functions_never_see_the_console_session_cookie() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; wasmfn_console=s3ss; lang=nl"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("wasmfn_console=other"));
        headers.insert("x-test", HeaderValue::from_static("1"));
        let pairs = header_pairs(&headers);
        assert_eq!(
            pairs,
            vec![
                ("cookie".to_string(), "theme=dark; lang=nl".to_string()),
                ("x-test".to_string(), "1".to_string()),
            ],
            "other cookies stay; a header holding only the session goes"
        );
    }

    #[test]
    fn custom_path_allows_three_levels() {
        assert_eq!(custom_path("").as_deref(), Some("/"));
        assert_eq!(custom_path("stock/market/today").as_deref(), Some("/stock/market/today"));
        assert_eq!(custom_path("a/b/c/d"), None);
    }

    #[test]
    fn entry_is_split_from_the_function_segment() {
        assert_eq!(split_entry("greet"), ("greet".into(), None));
        assert_eq!(
            split_entry("greet:example.greet"),
            ("greet".into(), Some("example.greet".into()))
        );
    }

    #[test]
    fn json_body_overrides_query_arguments() {
        let query = vec![("name".to_string(), "q".to_string()), ("n".to_string(), "1".to_string())];
        let args =
            arguments(&query, &headers(Some("application/json")), br#"{"name": "b"}"#).unwrap();
        assert_eq!(Value::Object(args.to_map()), json!({"name": "b", "n": "1"}));
    }

    #[test]
    fn first_query_value_wins() {
        let query = vec![("a".to_string(), "1".to_string()), ("a".to_string(), "2".to_string())];
        let args = arguments(&query, &headers(None), b"").unwrap();
        assert_eq!(Value::Object(args.to_map()), json!({"a": "1"}));
    }

    #[test]
    fn invalid_json_is_a_bad_request_naming_the_problem() {
        let error = arguments(&[], &headers(Some("application/json")), b"{nope").unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("not valid JSON"), "{error}");
    }

    #[test]
    fn form_bodies_become_arguments_and_curl_json_is_recognised() {
        let form = headers(Some("application/x-www-form-urlencoded"));
        let args = arguments(&[], &form, b"a=1&b=two").unwrap();
        assert_eq!(Value::Object(args.to_map()), json!({"a": "1", "b": "two"}));
        let args = arguments(&[], &form, br#"{"a": 1}"#).unwrap();
        assert_eq!(Value::Object(args.to_map()), json!({"a": 1}));
    }

    #[test]
    fn a_json_object_body_is_passed_on_as_written() {
        let body = br#"{"id": 123456789012345678901234567890, "x": 1.50}"#;
        let args = arguments(&[], &headers(Some("application/json")), body).unwrap();
        assert_eq!(args.as_str().as_bytes(), body, "not parsed and written again");
        let array = arguments(&[], &headers(Some("application/json")), b"[1, 2]").unwrap();
        assert!(array.is_empty(), "only an object gives arguments");
    }

    #[test]
    fn other_bodies_are_not_arguments() {
        let args = arguments(&[], &headers(Some("text/plain")), b"{not json").unwrap();
        assert!(args.is_empty());
    }
}
