"""ApiClient: requests are encoded as ixoncdkingress does and handed to the host backend."""

import json
import unittest

from ixoncdkingress.function.api_client import (
    ApiClient,
    ApiDenied,
    ApiError,
    ApiResponseTooLarge,
    ApiUnavailable,
    UnknownEndpoint,
    api_error,
)


class FakeApi:
    """Records each request and answers with the next queued response (JSON by default)."""

    def __init__(self):
        self.calls = []
        self.answers = []

    def request(self, method, url_name, url_args, query, headers, body):
        self.calls.append(
            {
                "method": method,
                "url_name": url_name,
                "url_args": url_args,
                "query": query,
                "headers": headers,
                "body": body,
            }
        )
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return 200, "application/json", b'{"type": "Ok", "data": [], "status": "success"}'

    @property
    def last(self):
        return self.calls[-1]


class ApiClientTest(unittest.TestCase):
    def setUp(self):
        self.backend = FakeApi()
        self.client = ApiClient(self.backend, "https://api.ixon.cloud/", api_company="co-1")

    def test_get_returns_the_json_answer(self):
        self.backend.answers.append((200, "application/json", b'{"type": "AgentList", "data": [1]}'))
        answer = self.client.get("AgentList", url_args={"publicId": "ag1"}, query={"fields": "name"})
        self.assertEqual(answer, {"type": "AgentList", "data": [1]})
        call = self.backend.last
        self.assertEqual((call["method"], call["url_name"]), ("GET", "AgentList"))
        self.assertEqual(call["url_args"], [("publicId", "ag1")])
        self.assertEqual(call["query"], [("fields", "name")])
        self.assertIsNone(call["body"])

    def test_default_headers_are_sent_and_caller_headers_override(self):
        self.client.get("MyUser", headers={"X-Extra": "1", "api-version": "3"})
        headers = self.backend.last["headers"]
        names = [name.lower() for name, _ in headers]
        self.assertEqual(sorted(names), ["api-company", "api-version", "x-extra"])
        self.assertIn(("Api-Company", "co-1"), headers)
        self.assertIn(("api-version", "3"), headers)
        self.assertNotIn("authorization", names)

    def test_set_custom_api_application_is_sent_on_later_requests(self):
        self.client.get("MyUser")
        self.assertNotIn("api-application", [n.lower() for n, _ in self.backend.last["headers"]])
        self.client.set_custom_api_application("app-42")
        self.client.get("MyUser")
        self.assertIn(("Api-Application", "app-42"), self.backend.last["headers"])

    def test_query_values_as_requests_params(self):
        self.client.get(
            "AgentList",
            query={"fields": "name,publicId", "skip": None, "filters": ["a", "b"], "limit": 5},
        )
        self.assertEqual(
            self.backend.last["query"],
            [("fields", "name,publicId"), ("filters", "a"), ("filters", "b"), ("limit", "5")],
        )

    def test_data_is_sent_as_json_unless_bytes(self):
        self.client.post("AgentList", {"name": "pump", "n": [1, 2]})
        self.assertEqual(json.loads(self.backend.last["body"]), {"name": "pump", "n": [1, 2]})
        self.assertEqual(self.backend.last["method"], "POST")
        self.client.patch("Agent", [{"publicId": "x"}], url_args={"publicId": "ag1"})
        self.assertEqual(self.backend.last["body"], b'[{"publicId": "x"}]')
        self.client.put("Agent", url_args={"publicId": "ag1"}, data=b"\x00raw")
        self.assertEqual(self.backend.last["body"], b"\x00raw")
        self.client.delete("Agent", url_args={"publicId": "ag1"}, query={"force": "1"})
        self.assertEqual(
            (self.backend.last["method"], self.backend.last["body"], self.backend.last["query"]),
            ("DELETE", None, [("force", "1")]),
        )
        self.client.options("AgentList")
        self.assertEqual(self.backend.last["method"], "OPTIONS")

    def test_json_keyword_sets_the_content_type(self):
        self.client.post("AgentList", None, json={"a": 1})
        self.assertEqual(self.backend.last["body"], b'{"a": 1}')
        self.assertIn(("Content-Type", "application/json"), self.backend.last["headers"])

    def test_requests_options_are_accepted_unknown_ones_rejected(self):
        self.client.get("MyUser", timeout=5, verify=False)
        with self.assertRaises(TypeError):
            self.client.get("MyUser", files={"f": b""})

    def test_non_json_answers_get_the_sdk_error_shape(self):
        self.backend.answers.append((502, "text/html", b"<h1>Bad gateway</h1>"))
        self.assertEqual(
            self.client.get("MyUser"),
            {"type": "Error", "data": [{"message": "<h1>Bad gateway</h1>"}], "status": "error"},
        )
        self.backend.answers.append((204, None, b""))
        self.assertEqual(self.client.delete("Agent")["data"], [{"message": ""}])

    def test_status_is_not_checked_as_in_the_sdk(self):
        error = {"type": "Error", "data": [{"message": "nope"}], "status": "error"}
        self.backend.answers.append((403, "application/json", json.dumps(error).encode()))
        self.assertEqual(self.client.get("MyUser"), error)

    def test_charset_of_the_answer_is_used(self):
        self.backend.answers.append((200, "application/json; charset=latin-1", '{"n": "é"}'.encode("latin-1")))
        self.assertEqual(self.client.get("MyUser"), {"n": "é"})

    def test_host_errors_are_raised(self):
        self.backend.answers.append(api_error("unknown-endpoint", "no URL named Nope"))
        with self.assertRaises(KeyError) as caught:  # as the SDK raises for an unknown name
            self.client.get("Nope")
        self.assertIsInstance(caught.exception, UnknownEndpoint)
        self.assertEqual(str(caught.exception), "no URL named Nope")
        for kind, cls in (("denied", ApiDenied), ("too-large", ApiResponseTooLarge), ("unavailable", ApiUnavailable)):
            self.backend.answers.append(api_error(kind, kind))
            with self.assertRaises(cls):
                self.client.get("MyUser")
            self.assertTrue(issubclass(cls, ApiError))

    def test_repr_shows_no_credentials(self):
        self.client.set_custom_api_application("app-42")
        text = repr(self.client)
        self.assertEqual(
            text,
            "<ApiClient base_url=https://api.ixon.cloud/, default_headers={'Api-Version': '2', "
            "'Api-Company': 'co-1', 'Api-Application': 'app-42'},>",
        )
        self.assertNotIn("uthorization", text)
        self.assertNotIn("Bearer", text)

    def test_invalid_header_values_are_rejected(self):
        with self.assertRaises(ValueError):
            self.client.get("MyUser", headers={"X-N": 1})
        self.client.get("MyUser", headers={"Api-Company": None})  # None removes a header
        self.assertNotIn("api-company", [n.lower() for n, _ in self.backend.last["headers"]])


if __name__ == "__main__":
    unittest.main()
