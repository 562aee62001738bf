"""wasmfn.outbound in plain CPython: the error each wasi:http code becomes, responses as
http.client gives them, and http.client / urllib.request sending through the transport (a fake
here; the host's in a bundle, tests/outbound.rs)."""

import json
import unittest
import urllib.request

from wasmfn import outbound
from wasmfn.outbound import errors, sockets, transport


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    def read(self, size: int) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    """Answers every request with JSON describing it; records the requests."""

    def __init__(self) -> None:
        self.sent = []

    def fetch(self, method, scheme, authority, path, headers, body, timeouts):
        data = b"".join(body)
        self.sent.append((method, scheme, authority, path, headers, data, timeouts))
        answer = json.dumps({"method": method, "path": path, "body": data.decode()}).encode()
        return 200, [("Content-Type", "application/json"), ("Set-Cookie", "a=1")], FakeBody(answer)


def code(name, value=None):
    kind = type(f"ErrorCode_{name}", (), {})
    instance = kind()
    instance.value = value
    return instance


class ErrorsTest(unittest.TestCase):
    def test_each_code_is_the_exception_python_code_expects(self):
        denied = errors.http_error(code("HttpRequestDenied"), "https", "api.example.com")
        self.assertIsInstance(denied, PermissionError)
        self.assertIn("https://api.example.com:443", str(denied))
        self.assertIn("[network] allow", str(denied))
        self.assertIsInstance(
            errors.http_error(code("DestinationIpProhibited"), "http", "x:80"), PermissionError
        )
        self.assertIsInstance(
            errors.http_error(code("ConnectionRefused"), "http", "x:81"), ConnectionRefusedError
        )
        self.assertIsInstance(
            errors.http_error(code("ConnectionTimeout"), "http", "x"), TimeoutError
        )
        tls = errors.http_error(code("TlsCertificateError"), "https", "x")
        self.assertTrue(tls.certificate)
        large = errors.http_error(code("HttpResponseBodySize", 1024), "http", "x")
        self.assertIn("1024 bytes", str(large))
        self.assertIsInstance(errors.http_error(code("Whatever"), "http", "x"), OSError)


class TcpTest(unittest.TestCase):
    def test_connect_errors_are_the_exceptions_sockets_raise(self):
        def error(name, text="why"):
            kind = type(f"ConnectError_{name}", (), {})
            instance = kind()
            instance.value = text
            return errors.tcp_error(instance, "mail.example.com", 465)

        self.assertIsInstance(error("NotAllowed"), PermissionError)
        self.assertIsInstance(error("Refused"), ConnectionRefusedError)
        self.assertIsInstance(error("Timeout"), TimeoutError)
        self.assertIsInstance(error("Tls"), outbound.TLSFailed)
        self.assertIsInstance(error("Failed"), ConnectionError)
        self.assertEqual(str(error("Unresolved", "no such name")), "no such name")

    def test_smtplib_gains_ssl_and_starttls(self):
        import smtplib

        patched = type("Module", (), {})()
        patched.SMTP = type("SMTP", (smtplib.SMTP,), {})
        patched.SMTP_SSL_PORT = 465
        patched.SMTPNotSupportedError = smtplib.SMTPNotSupportedError
        patched.SMTPResponseException = smtplib.SMTPResponseException
        patched.__all__ = ["SMTP"]
        sockets.patch_smtplib(patched)
        self.assertEqual(patched.SMTP_SSL.default_port, 465)
        self.assertTrue(issubclass(patched.SMTP_SSL, patched.SMTP))
        self.assertIn("SMTP_SSL", patched.__all__)
        self.assertEqual(patched.SMTP.starttls.__module__, sockets.__name__)


class AdaptersTest(unittest.TestCase):
    def setUp(self):
        self.transport = FakeTransport()
        self.saved = transport.set_transport(self.transport)

    def tearDown(self):
        transport.set_transport(self.saved)

    def test_send_drops_connection_headers_and_keeps_the_rest(self):
        response = outbound.send(
            "post", "http://h.example:8080/p?q=1", {"Host": "x", "Connection": "close", "X-A": "b"}, "hi"
        )
        method, scheme, authority, path, headers, data, _ = self.transport.sent[0]
        self.assertEqual((method, scheme, authority, path), ("POST", "http", "h.example:8080", "/p?q=1"))
        self.assertEqual(headers, [("X-A", b"b")])
        self.assertEqual(data, b"hi")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.getheader("content-type"), "application/json")
        self.assertEqual(json.loads(response.read())["body"], "hi")
        self.assertEqual(response.read(), b"")

    def test_http_client_connection_sends_through_the_transport(self):
        connection = outbound.HTTPSConnection("h.example", timeout=2)
        connection.request("PUT", "/x", body=b"data", headers={"A": "1"})
        response = connection.getresponse()
        self.assertEqual(json.loads(response.read()), {"method": "PUT", "path": "/x", "body": "data"})
        self.assertEqual(self.transport.sent[0][1:3], ("https", "h.example"))
        self.assertEqual(self.transport.sent[0][6], (2, 2, 2))

    def test_urllib_request_uses_the_handlers(self):
        class Handler(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(outbound.HTTPConnection, req)

        opener = urllib.request.build_opener(Handler)
        with opener.open("http://h.example/y", data=b"z") as response:
            self.assertEqual(response.status, 200)
            self.assertEqual(response.geturl(), "http://h.example/y")
            self.assertEqual(json.loads(response.read())["body"], "z")


if __name__ == "__main__":
    unittest.main()
