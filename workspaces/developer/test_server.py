"""Tests of the HTTP API: python -m unittest test_server (no GPU or download needed)."""

import json
import os
import threading
import unittest
import urllib.error
import urllib.request

os.environ.setdefault("GPUBROKER_FAKE_MODEL", "1")

import server  # noqa: E402


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = server.make_server("127.0.0.1", 0)
        cls.url = f"http://127.0.0.1:{cls.srv.server_address[1]}"
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()

    def post(self, body):
        req = urllib.request.Request(self.url + "/generate", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def test_health(self):
        with urllib.request.urlopen(self.url + "/healthz") as r:
            self.assertEqual(json.load(r)["ok"], True)

    def test_generate(self):
        status, body = self.post({"prompt": "A GPU", "max_new_tokens": 10})
        self.assertEqual(status, 200)
        self.assertTrue(body["text"].startswith("A GPU"))

    def test_invalid(self):
        self.assertEqual(self.post({})[0], 422)
        self.assertEqual(self.post({"prompt": "x", "max_new_tokens": 100000})[0], 422)
        self.assertEqual(self.post({"prompt": "  "})[0], 422)


if __name__ == "__main__":
    unittest.main()
