//! A C extension in a bundle: dateparser with regex (mrab-regex), whose WebAssembly wheel
//! scripts/build-wasi-c-wheels.sh builds (scripts/test.sh runs it before the tests), called end
//! to end through the real server's ingress endpoint.

mod support;

use serde_json::{json, Value};
use support::{json, start_server, TestServer};

async fn ingress(server: &TestServer, body: Value) -> (u16, Value) {
    let url = server.url("/spaces/default/functions/dateparsing/ingress");
    json(server.client.post(url).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn dateparser_parses_dates_in_several_languages_with_regex_built_for_wasi() {
    let server = start_server(&["dateparsing"], None).await;
    for (arguments, expected) in [
        (json!({"text": "12 March 2024 14:30"}), "2024-03-12T14:30:00"),
        (json!({"text": "2 days ago", "base": "2025-01-10T12:00:00"}), "2025-01-08T12:00:00"),
        (json!({"text": "le 3 janvier 2023 à 9h15", "languages": ["fr"]}), "2023-01-03T09:15:00"),
        (json!({"text": "3 de febrero de 2021"}), "2021-02-03T00:00:00"),
    ] {
        let (status, body) =
            ingress(&server, json!({"name": "dates.parse", "arguments": arguments})).await;
        assert_eq!((status, body), (200, json!({"date": expected})), "{arguments}");
    }
    let (status, body) =
        ingress(&server, json!({"name": "dates.parse", "arguments": {"text": "no date here"}}))
            .await;
    assert_eq!((status, body), (200, json!({"date": null})));
    // search_dates, as IXON's bulk firmware upgrade app uses it on release notes.
    let text = "Firmware 4.2 was released on 5 May 2025, see notes";
    let (status, body) =
        ingress(&server, json!({"name": "dates.search", "arguments": {"text": text}})).await;
    assert_eq!((status, body), (200, json!([["on 5 May 2025", "2025-05-05T00:00:00"]])));
}

#[tokio::test]
async fn regex_runs_its_unicode_fuzzy_and_full_case_matching() {
    let server = start_server(&["dateparsing"], None).await;
    let text = "HeLLo Wörld Ärger, my color is red; STRASSE strasse Straße";
    let (status, body) =
        ingress(&server, json!({"name": "dates.patterns", "arguments": {"text": text}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "upper_hidden": "_e__o _örld _rger, my color is red; _______ strasse _traße",
            "fuzzy": "color",
            "fullcase": ["STRASSE", "strasse", "Straße"],
        })
    );
}
