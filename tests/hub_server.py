"""A local stand-in for the Hugging Face Hub, so pushing and loading can be tested offline.

It serves the few endpoints `huggingface_hub` uses to create a repo, commit files, describe
a repo and download files. Every file is declared a "regular" upload (sent inline in the
commit), so no LFS or Xet storage is involved. Bounded: loopback only, an in-memory store,
a cap on request size, and it shuts itself down after `lifetime_s` even if nobody stops it.

Use it with `HF_ENDPOINT=<server.url>` set *before* `huggingface_hub` is imported (the
endpoint is read at import), i.e. in a subprocess:

    with HubServer() as hub:
        subprocess.run([...], env={**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"})
        hub.files("user/repo")  # {path: bytes}
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

MAX_BODY = 256 * 1024 * 1024
REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("GET", re.compile(rf"^/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("GET", re.compile(rf"^/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


class HubServer:
    """In-memory Hub on `127.0.0.1:<free port>`; `url`, `files(repo)`, `requests`, `unknown`."""

    def __init__(self, lifetime_s: float = 300.0) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.heads: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.lifetime_s = lifetime_s
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def files(self, repo_id: str) -> dict[str, bytes]:
        with self.lock:
            return dict(self.repos.get(repo_id, {}))

    def start(self) -> HubServer:
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True).start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # never outlive a forgotten test
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ store
    def commit(self, repo: str, files: dict[str, bytes], deleted: list[str]) -> str:
        with self.lock:
            store = self.repos.setdefault(repo, {})
            store.update(files)
            for path in deleted:
                store.pop(path, None)
            digest = hashlib.sha1(self.heads.get(repo, "").encode())
            for path in sorted(store):
                digest.update(path.encode() + hashlib.sha1(store[path]).digest())
            self.heads[repo] = digest.hexdigest()
            return self.heads[repo]


class _Handler(BaseHTTPRequestHandler):
    server_hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlparse(self.path).path
        hub = self.server_hub
        hub.requests.append((method, path))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(413, {"error": "request too large"})
        body = self.rfile.read(length) if length else b""
        for verb, pattern, name in ROUTES:
            match = pattern.match(path)
            if match and (verb == method or (verb == "GET" and method == "HEAD")):
                groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                return getattr(self, name)(body, **groups)
        hub.unknown.append((method, path))
        self._json(404, {"error": f"not served here: {method} {path}"})

    # ------------------------------------------------------------------ replies
    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _missing_repo(self, repo: str) -> None:
        self._json(404, {"error": f"Repository {repo} not found"}, {"X-Error-Code": "RepositoryNotFound"})

    # ------------------------------------------------------------------ endpoints
    def create_repo(self, body: bytes) -> None:
        data = json.loads(body or b"{}")
        repo = f"{data.get('organization') or 'user'}/{data['name']}"
        hub = self.server_hub
        if repo in hub.repos:
            return self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo}"})
        hub.commit(repo, {}, [])
        self._json(200, {"url": f"{hub.url}/{repo}", "name": repo})

    def validate_yaml(self, body: bytes) -> None:
        self._json(200, {"errors": [], "warnings": []})

    def preupload(self, body: bytes, repo: str, rev: str) -> None:
        if repo not in self.server_hub.repos:
            return self._missing_repo(repo)
        files = json.loads(body)["files"]
        self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                   for f in files]})

    def commit(self, body: bytes, repo: str, rev: str) -> None:
        hub = self.server_hub
        if repo not in hub.repos:
            return self._missing_repo(repo)
        files, deleted = {}, []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item.get("value", {})
            if item.get("key") == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item.get("key") in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            elif item.get("key") != "header":  # lfsFile etc.: never requested by preupload
                return self._json(400, {"error": f"unsupported commit operation {item.get('key')}"})
        sha = hub.commit(repo, files, deleted)
        self._json(200, {"commitUrl": f"{hub.url}/{repo}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None,
                         "success": True})

    def repo_info(self, body: bytes, repo: str, rev: str = "main") -> None:
        hub = self.server_hub
        if repo not in hub.repos:
            return self._missing_repo(repo)
        files = hub.files(repo)
        self._json(200, {"id": repo, "modelId": repo, "sha": hub.heads[repo], "private": False, "disabled": False,
                         "gated": False, "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers",
                         "siblings": [{"rfilename": p, "size": len(b)} for p, b in sorted(files.items())]})

    def tree(self, body: bytes, repo: str, rev: str, path: str = "") -> None:
        hub = self.server_hub
        if repo not in hub.repos:
            return self._missing_repo(repo)
        prefix = path.rstrip("/") + "/" if path else ""
        entries = [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                   for p, b in sorted(hub.files(repo).items()) if p.startswith(prefix)]
        if path and not entries:
            return self._json(404, {"error": f"{path} not found"}, {"X-Error-Code": "EntryNotFound"})
        self._json(200, entries)

    def whoami(self, body: bytes) -> None:
        self._json(200, {"type": "user", "name": "user", "orgs": [], "auth": {"accessToken": {"role": "write"}}})

    def resolve(self, body: bytes, repo: str, rev: str, path: str) -> None:
        hub = self.server_hub
        if repo not in hub.repos:
            return self._missing_repo(repo)
        content = hub.files(repo).get(path)
        if content is None:
            return self._json(404, {"error": f"Entry {path} not found"}, {"X-Error-Code": "EntryNotFound"})
        self._send(200, content, {"Content-Type": "application/octet-stream", "X-Repo-Commit": hub.heads[repo],
                                  "ETag": f'"{hashlib.sha256(content).hexdigest()}"'})
