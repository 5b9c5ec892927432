"""Serve an open language model behind a small HTTP API.

    python server.py                      # http://127.0.0.1:8000, model distilgpt2
    MODEL=gpt2-medium PORT=9000 python server.py

Endpoints:
    GET  /healthz            -> {"ok": true, "model": "...", "device": "cuda"}
    POST /generate           {"prompt": "...", "max_new_tokens": 40, "temperature": 0.8}
                             -> {"text": "...", "model": "...", "seconds": 0.12}

Only the standard library serves HTTP; the model runs in a Hugging Face transformers
pipeline on the GPU when there is one.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = os.environ.get("MODEL", "distilgpt2")
MAX_BODY = 64 * 1024
MAX_NEW_TOKENS = 256


def load_generator(model_name):
    """Return a function prompt, max_new_tokens, temperature -> generated text."""
    if os.environ.get("GPUBROKER_FAKE_MODEL") == "1":
        # For tests without a download: echo the prompt back, reversed.
        return "fake", lambda prompt, n, t: prompt + " " + prompt[::-1]
    import torch
    from transformers import pipeline

    device = 0 if torch.cuda.is_available() else -1
    pipe = pipeline("text-generation", model=model_name, device=device)
    lock = threading.Lock()  # one generation at a time on the GPU

    def generate(prompt, max_new_tokens, temperature):
        with lock:
            out = pipe(prompt, max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                       temperature=max(temperature, 1e-3), pad_token_id=pipe.tokenizer.eos_token_id)
        return out[0]["generated_text"]

    return ("cuda" if device == 0 else "cpu"), generate


class Handler(BaseHTTPRequestHandler):
    server_version = "gpubroker-starter/1"
    device, generate = None, None

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            return self.send_json(200, {"ok": True, "model": MODEL, "device": self.device})
        self.send_json(404, {"error": "not_found"})

    def do_POST(self):
        if self.path != "/generate":
            return self.send_json(404, {"error": "not_found"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.send_json(413, {"error": "too_large"})
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
            prompt = req["prompt"]
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError("prompt must be a non-empty string")
            n = int(req.get("max_new_tokens", 40))
            temperature = float(req.get("temperature", 0.8))
            if not 1 <= n <= MAX_NEW_TOKENS or not 0 <= temperature <= 2:
                raise ValueError(f"max_new_tokens is 1..{MAX_NEW_TOKENS}, temperature 0..2")
        except (KeyError, ValueError, TypeError) as e:
            return self.send_json(422, {"error": "invalid", "message": str(e)})
        start = time.time()
        text = self.generate(prompt, n, temperature)
        self.send_json(200, {"text": text, "model": MODEL, "seconds": round(time.time() - start, 3)})


def make_server(host="127.0.0.1", port=8000):
    Handler.device, gen = load_generator(MODEL)
    Handler.generate = staticmethod(gen)
    return ThreadingHTTPServer((host, port), Handler)


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    srv = make_server(host, port)
    print(f"serving {MODEL} on http://{host}:{port} ({Handler.device})", file=sys.stderr)
    srv.serve_forever()
