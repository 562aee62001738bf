//! The synchronous HTTP trigger and the ixoncdkingress call format, end to end: real bundles,
//! the real server, real HTTP.

mod support;

use serde_json::json;
use support::{json, start_server};

#[tokio::test]
async fn every_method_reaches_the_function_with_query_and_custom_path() {
    let server = start_server(&["behave"], None).await;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let url = server.invoke_url("behave", "/stock/market/today?company=Google&x=1&x=2");
        let request = server.client.request(method.parse().unwrap(), url);
        let (status, body) = json(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert_eq!(body["method"], method);
        assert_eq!(body["path"], "/stock/market/today");
        assert_eq!(body["args"], json!({"company": "Google", "x": "1"}));
        assert_eq!(body["query"], json!([["company", "Google"], ["x", "1"], ["x", "2"]]));
        assert_eq!(body["trigger"], "http");
    }
    // An argument named like the context parameter cannot displace the context.
    let url = server.invoke_url("behave", "?context=forged&n=1");
    let (status, body) = json(server.client.get(url).send().await.unwrap()).await;
    assert_eq!((status, &body["args"]), (200, &json!({"n": "1"})));
}

#[tokio::test]
async fn custom_path_levels_and_the_bare_endpoint() {
    let server = start_server(&["behave"], None).await;
    let (status, body) =
        json(server.client.get(server.invoke_url("behave", "")).send().await.unwrap()).await;
    assert_eq!((status, &body["path"]), (200, &json!("/")));
    let (status, body) =
        json(server.client.get(server.invoke_url("behave", "/one")).send().await.unwrap()).await;
    assert_eq!((status, &body["path"]), (200, &json!("/one")));
    let response = server.client.get(server.invoke_url("behave", "/a/b/c/d")).send().await.unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn json_body_and_headers_reach_the_function() {
    let server = start_server(&["behave"], None).await;
    let response = server
        .client
        .post(server.invoke_url("behave", "?name=query"))
        .header("x-test", "yes")
        .json(&json!({"name": "body", "n": 3, "nested": {"a": [1, 2]}}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["args"], json!({"name": "body", "n": 3, "nested": {"a": [1, 2]}}));
    assert_eq!(body["x_test"], "yes");
    assert_eq!(body["content_type"], "application/json");
    assert_eq!(body["config"], json!({"region": "eu"}));
}

#[tokio::test]
async fn non_json_bodies_reach_the_function_only_as_the_request_body() {
    let server = start_server(&["behave"], None).await;
    let response = server
        .client
        .put(server.invoke_url("behave", ""))
        .header("content-type", "text/plain")
        .body("{this is text")
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["args"], json!({}));
    assert_eq!(body["body"], "{this is text");
}

#[tokio::test]
async fn entries_are_chosen_by_name_with_ixon_module_rules() {
    let server = start_server(&["behave"], None).await;
    let call = |entry: &str| {
        server
            .client
            .post(server.invoke_url(&format!("behave:{entry}"), ""))
            .json(&json!({"name": "Ada", "ignored": true}))
    };
    let (status, body) = json(call("behave.greet").send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!("Hello, Ada!")));
    // A bare name means module `functions`, as ixoncdkingress's parse_function_location.
    let (status, body) = json(call("plain").send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!("plain")));
    let (status, body) = json(call("behave.hidden").send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "entry_not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("behave.hidden"));
    let (status, body) = json(call("behave.agentic").send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"x": 1})));
}

#[tokio::test]
async fn functions_choose_status_headers_and_body() {
    let server = start_server(&["behave"], None).await;
    let response =
        server.client.post(server.invoke_url("behave:behave.custom", "")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-custom"], "yes");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(response.headers().contains_key("x-invocation-id"));
    assert_eq!(response.text().await.unwrap(), "created");
}

#[tokio::test]
async fn every_invocation_gets_a_fresh_instance() {
    let server = start_server(&["behave"], None).await;
    for _ in 0..3 {
        let response = server
            .client
            .post(server.invoke_url("behave:behave.counter", ""))
            .send()
            .await
            .unwrap();
        let (status, body) = json(response).await;
        assert_eq!((status, body), (200, json!({"calls": 1})), "module state leaked between calls");
    }
}

#[tokio::test]
async fn each_instance_draws_its_own_random_numbers() {
    // `random` is seeded when the bundle is built; without a seed of its own per instance,
    // every call would draw the same numbers.
    let server = start_server(&["behave"], None).await;
    let mut draws = Vec::new();
    for _ in 0..3 {
        let url = server.invoke_url("behave:behave.dice", "");
        let (status, body) = json(server.client.post(url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        draws.push((body["random"].to_string(), body["choice"].to_string()));
    }
    for (i, a) in draws.iter().enumerate() {
        for b in &draws[i + 1..] {
            assert!(a.0 != b.0 && a.1 != b.1, "two calls drew the same numbers: {draws:?}");
        }
    }
}

#[tokio::test]
async fn the_built_heap_is_immortal_and_what_a_call_makes_is_not() {
    // `wasmfn build` writes CPython's immortal reference count into every object the build
    // left in the image, so calls do not write to their pages; objects a call makes are
    // counted as always (they are freed when their count drops to zero).
    let server = start_server(&["behave"], None).await;
    for _ in 0..2 {
        let url = server.invoke_url("behave:behave.heap", "");
        let (status, body) = json(server.client.post(url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"module": true, "function": true, "bytes": true, "made": false}));
    }
}

#[tokio::test]
async fn the_platform_call_path_is_specialized_in_the_snapshot_and_its_warm_up_entry_is_hidden() {
    // The build runs the path every call takes (wasmfn_entry._context, the dispatch, render) a
    // few times on a function of the platform's own, so that CPython's specialized bytecode for
    // it is in the snapshot instead of being written by every call (behave has no [[warmup]];
    // render has not run in the call when the function looks at it).
    let server = start_server(&["behave"], None).await;
    let url = server.invoke_url("behave:behave.specialized", "");
    let (status, body) = json(server.client.post(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["render"].as_u64().unwrap() > 0, "render is not specialized: {body}");
    // Handler.handle itself ran at build time, the body's write to the host left out.
    assert!(
        body["write_body"].as_u64().unwrap() > 0,
        "_write_body never ran at build time: {body}"
    );
    assert_eq!(body["platform_entry_exposed"], json!(false));
    // Callers cannot reach the platform's function.
    let url = server.invoke_url("behave:wasmfn.platform-warm-up", "");
    let (status, body) = json(server.client.post(url).send().await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_calls_new_objects_lie_together_not_in_the_holes_the_build_left() {
    // CPython's objects come from wasi-libc's malloc, which serves a request from a freed chunk
    // of its size first. `wasmfn build` fills the holes the build's garbage left in the heap
    // (wasmfn/_heap.py `fill_holes`), so forty new objects of one size lie on a few pages
    // instead of on ~35 pages of the image (each then copied for the instance): in a probe
    // bundle the four sizes below took 17 pages with the filling (5, 1, 3, 8), 138 without.
    let server = start_server(&["behave"], None).await;
    let url = server.invoke_url("behave:behave.new_object_pages", "");
    let (status, body) = json(server.client.post(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let pages: Vec<u64> = body.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(pages.len(), 4, "{body}");
    assert!(
        pages.iter().sum::<u64>() <= 48,
        "a call's objects are scattered over the image: {body}"
    );
}

#[tokio::test]
async fn an_instance_that_never_draws_random_numbers_does_not_seed_the_generator() {
    // componentize-py's runtime calls `random.seed()` before each instance's first call;
    // seeding costs ~600 words of entropy and the generator's set-up, so it waits for the
    // first draw (each_instance_draws_its_own_random_numbers checks that draws still differ).
    let server = start_server(&["behave"], None).await;
    let url = server.invoke_url("behave:behave.seeded_before_use", "");
    let (status, body) = json(server.client.post(url).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"seeded": false})));
}

fn ixon_call(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "arguments": {"name": "Ada", "unused": 1},
        "config": {"region": "us", "extra": "x"},
        "context": {
            "user": {"publicId": "u1", "name": "Ada", "custom": {"lang": "en"}},
            "company": {"publicId": "c1", "name": "ACME", "custom": {}, "permissions": ["COMPANY_ADMIN"]},
            "agent": {"publicId": "ag1", "name": "Router", "custom": {}},
            "template": {"publicId": "t1", "name": "App", "custom": {}},
            "accessToken": {"headerValue": "Bearer secret"}
        },
        "internalConfig": {},
        "created_on": "2026-11-23T00:00:00+00:00"
    })
}

#[tokio::test]
async fn ixoncdkingress_call_format_is_accepted() {
    let server = start_server(&["behave"], None).await;
    let url = server.url("/spaces/default/functions/behave/ingress");
    let (status, body) =
        json(server.client.post(&url).json(&ixon_call("behave.echo")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["trigger"], "ixon");
    assert_eq!(body["args"], json!({"name": "Ada", "unused": 1}));
    assert_eq!(body["config"], json!({"region": "us", "extra": "x"}));
    assert_eq!(
        body["user"],
        json!({"public_id": "u1", "name": "Ada", "custom_properties": {"lang": "en"}, "permissions": null})
    );
    assert_eq!(body["company"]["permissions"], json!(["COMPANY_ADMIN"]));
    assert_eq!(body["agent"]["public_id"], "ag1");
    assert_eq!(body["asset"], json!(null));
    assert_eq!(body["template"]["name"], "App");

    let (status, body) = json(
        server.client.post(&url).json(&ixon_call("behave.agent_or_asset")).send().await.unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!("ag1")));
    // Unknown arguments are dropped for functions without **kwargs, as the original does.
    let (status, body) =
        json(server.client.post(&url).json(&ixon_call("behave.greet")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!("Hello, Ada!")));
    // Proper status codes where the original answers 200 "Not found…".
    let (status, body) =
        json(server.client.post(&url).json(&ixon_call("behave.nope")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "entry_not_found");
    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}

#[tokio::test]
async fn ingress_root_answers_at_slash_like_the_original() {
    let server = start_server(&["behave"], Some("behave")).await;
    let response =
        server.client.post(server.url("/")).json(&ixon_call("behave.greet")).send().await.unwrap();
    let (status, body) = json(response).await;
    assert_eq!((status, body), (200, json!("Hello, Ada!")));
    let without = start_server(&["behave"], None).await;
    let response = without
        .client
        .post(without.url("/"))
        .json(&ixon_call("behave.greet"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let server = start_server(&["behave"], None).await;
    let (status, body) =
        json(server.client.get(server.url("/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) =
        json(server.client.get(server.url("/nothing/here")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn pure_python_requirements_are_bundled() {
    let server = start_server(&["behave"], None).await;
    let response = server
        .client
        .get(server.invoke_url("behave:behave.uses_requirement", ""))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!((status, body), (200, json!({"six": "1.16.0"})));
}

#[tokio::test]
async fn standard_library_modules_can_be_imported_inside_a_call() {
    let server = start_server(&["behave"], None).await;
    let response = server
        .client
        .get(server.invoke_url("behave:behave.lazy_imports", ""))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], "2.10");
    assert_eq!(body["toml"], 1);
    assert_eq!(body["missing"], "No module named 'wasmfn_no_such_module'");
}

#[tokio::test]
async fn readiness_and_metrics_count_every_invocation_by_status() {
    let server = start_server(&["behave"], None).await;
    let (status, ready) =
        json(server.client.get(server.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
    assert_eq!(
        ready["backends"],
        json!({"documents": "ok", "objects": "ok", "state": "ok"}),
        "{ready}"
    );

    let greet = server.invoke_url("behave:behave.greet", "?name=Ada");
    assert_eq!(server.client.get(greet).send().await.unwrap().status(), 200);
    let boom = server.invoke_url("behave:behave.boom", "");
    for _ in 0..2 {
        assert_eq!(server.client.post(&boom).send().await.unwrap().status(), 500);
    }

    let anonymous = server.client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "metrics are behind the admin token");
    let response = server.admin(reqwest::Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().contains("openmetrics"));
    let text = response.text().await.unwrap();
    let line = |labels: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("wasmfn_invocations_total{{{labels}}}")))
            .unwrap_or_else(|| panic!("no series {labels} in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    let ok = r#"space="default",function="behave",version="1.0.0",trigger="http",status="200""#;
    let failed = r#"space="default",function="behave",version="1.0.0",trigger="http",status="500""#;
    assert_eq!(line(ok), "1");
    assert_eq!(line(failed), "2");
    assert!(text.contains("wasmfn_functions_active 1"), "{text}");
    // Every call has answered; a call gives its run slot back once its instance's memory is
    // reset, just after the answer, so the gauge falls to 0 (a leaked slot would keep it up).
    // The bound is 4 per core by default.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = server.admin(reqwest::Method::GET, "/metrics").send().await.unwrap();
        let now = now.text().await.unwrap();
        if now.contains("wasmfn_invocations_running 0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "run slots still held:\n{now}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let slots = wasmfn_runtime::running::default_max_running();
    assert!(text.contains(&format!("wasmfn_max_running {slots}")), "{text}");
    let instantiated = text
        .lines()
        .find(|l| l.starts_with("wasmfn_instantiate_seconds_count"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .expect("instantiate histogram");
    assert!(instantiated >= 3, "{text}");
    assert!(
        text.contains(r#"wasmfn_trigger_up{space="default",trigger="new-year",kind="cron"} 1"#),
        "{text}"
    );
}
