"""A local stand-in for raw.githubusercontent.com serving copies of ../shared/data (tests only).

    m = Mirror(); m.serve("annomi")                 # the catalogue's files, from the shared copies
    fetch("annomi", base=m.url)                     # hybridtune.catalogue.download
    m.cut[m.path("annomi", "AnnoMI-simple.csv")] = 1000   # the next response stops after 1000 bytes

Files are laid out as <repo>/<commit>/<path>; HTTP Range is honoured as GitHub does.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import shared_data

from hybridtune import catalogue

# catalogue file name -> the shared copy that holds the same bytes
SHARED = {
    ("counselchat", "20200325_counsel_chat.csv"): ("counsel-chat", "20200325_counsel_chat.csv"),
    ("counselchat", "LICENSE"): ("counsel-chat", "LICENSE"),
    ("counselchat", "README.upstream.md"): ("counsel-chat", "README.upstream.md"),
    ("annomi", "AnnoMI-simple.csv"): ("annomi", "AnnoMI-simple.csv"),
    ("annomi", "AnnoMI-full.csv"): ("annomi", "AnnoMI-full.csv"),
    ("annomi", "LICENSE-README.md"): ("annomi", "README.upstream-with-license-line.md"),
    ("cactus", "evaluation.json"): ("cactus-eval", "evaluation.json"),
    ("cactus", "LICENSE"): ("cactus-eval", "LICENSE"),
    ("cactus", "README.upstream.md"): ("cactus-eval", "README.upstream.md"),
    ("mentalchat16k", "evalq_bench.jsonl"): ("mentalchat16k-eval", "evalq_bench.jsonl"),
    ("mentalchat16k", "LICENSE"): ("mentalchat16k-eval", "LICENSE"),
}


class Mirror:
    """Files by URL path; `cut[path] = n` makes the next response for it stop after n bytes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                mirror.requests.append((self.path, rng))
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(body):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body) - start))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                n = mirror.cut.pop(self.path, None)
                self.wfile.write(body[start:] if n is None else body[start:start + n])
                if n is not None:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, name: str, only: set[str] | None = None) -> None:
        ds = catalogue.get(name)
        for f in ds.files:
            if (name, f.name) in SHARED and (only is None or f.name in only):
                folder, file = SHARED[(name, f.name)]
                self.files[self.path(name, f.name)] = shared_data(folder, file).read_bytes()

    def path(self, name: str, file: str) -> str:
        ds = catalogue.get(name)
        f = next(x for x in ds.files if x.name == file)
        return ds.url(f, "")

    def close(self):
        self.server.shutdown()
