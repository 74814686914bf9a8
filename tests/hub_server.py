"""A tiny in-memory Hugging Face Hub for tests: enough of the HTTP API for the real `huggingface_hub` client.

Why: push/pull, revisions, auth refusals and offline behaviour must be tested without the network. The
server speaks only what `huggingface_hub` 2.x uses for models: whoami-v2, repo create, repo info per
revision, tree listing, branch create, validate-yaml, preupload (always "regular": files come inline),
NDJSON commit, and file resolve (GET/HEAD with ETag, X-Repo-Commit, Content-Length).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

READ = "read"
WRITE = "write"


@dataclass
class Token:
    """A user's access token; `role` is "read", "write" or "fineGrained" (with `scoped` permissions)."""

    user: str
    role: str = WRITE
    scoped: list[dict] | None = None


@dataclass
class Repo:
    """A model repo: branches map to commit shas, each commit to a full {path: bytes} snapshot."""

    repo_id: str
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)


def git_blob_sha(data: bytes) -> str:
    """The git object id of a blob, which the Hub uses as ETag and tree `oid` of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """The Hub's state plus a threaded HTTP server serving it on 127.0.0.1 (random free port)."""

    def __init__(
        self,
        tokens: dict[str, Token] | None = None,
        orgs: dict[str, list[str]] | None = None,
    ) -> None:
        self.tokens = tokens if tokens is not None else {}
        self.orgs = orgs if orgs is not None else {}  # user -> orgs they belong to
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) log, to assert what the client did
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.hub = self  # type: ignore[attr-defined]  (handlers find the state through their server)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeHub:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket, so later requests get "connection refused"."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    # state helpers -------------------------------------------------------------------------------
    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.branches.get(revision, revision)]

    def commit(self, repo: Repo, branch: str, changes: dict[str, bytes | None], message: str) -> str:
        parent = repo.branches.get(branch)
        snapshot = dict(repo.commits[parent]) if parent else {}
        for path, data in changes.items():
            if data is None:
                snapshot.pop(path, None)
            else:
                snapshot[path] = data
        sha = hashlib.sha1(f"{repo.repo_id}{branch}{parent}{message}{time.time_ns()}".encode()).hexdigest()
        repo.commits[sha] = snapshot
        repo.branches[branch] = sha
        repo.messages[sha] = message
        return sha

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        repo = Repo(repo_id=repo_id, private=private)
        self.commit(repo, "main", {".gitattributes": b"*.keras filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit")
        self.repos[repo_id] = repo
        return repo

    def can_write(self, token: Token | None, namespace: str) -> bool:
        if token is None:
            return False
        if token.role == READ:
            return False
        if token.role == "fineGrained":
            return any(
                s.get("entity", {}).get("name") == namespace and "repo.write" in s.get("permissions", [])
                for s in token.scoped or []
            )
        return namespace == token.user or namespace in self.orgs.get(token.user, [])

    def can_write_or_member(self, token: Token, repo_id: str) -> bool:
        """Whether `token`'s user owns the repo's namespace or belongs to it (may see private repos)."""
        namespace = repo_id.split("/")[0]
        return namespace == token.user or namespace in self.orgs.get(token.user, [])

    # HTTP ----------------------------------------------------------------------------------------
    def _handler_class(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_HEAD(self) -> None:
                self._dispatch("HEAD")

            def do_POST(self) -> None:
                self._dispatch("POST")

            # plumbing
            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                path, self.query = unquote(parts.path), parse_qs(parts.query)
                hub = hub_of(self)
                hub.requests.append((method, path))
                self.body = b""
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.body = self.rfile.read(length)
                try:
                    with hub.lock:
                        route(self, method, path)
                except Exception as exc:  # noqa: BLE001  (a bug in the fake: make it visible as a 500)
                    self.send_json({"error": f"fake hub error: {exc!r}"}, status=500)

            def token(self) -> Token | None | bool:
                """The caller's Token, None when anonymous, False when the header is invalid."""
                auth = self.headers.get("Authorization")
                if not auth:
                    return None
                value = auth.removeprefix("Bearer ").strip()
                return hub_of(self).tokens.get(value, False)

            def send_json(self, payload, status: int = 200, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def error(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
                extra = {"X-Error-Message": message, **(headers or {})}
                if code:
                    extra["X-Error-Code"] = code
                self.send_json({"error": message}, status=status, headers=extra)

            def bad_credentials(self) -> None:
                self.error(401, "Invalid credentials in Authorization header")

        return Handler


def _repo_for_read(h, repo_id: str) -> Repo | None:
    """The repo if the caller may read it; otherwise answers like the Hub (401/404 RepoNotFound)."""
    token = h.token()
    if token is False:
        h.bad_credentials()
        return None
    repo = hub_of(h).repos.get(repo_id)
    visible = repo is not None and (
        not repo.private or (token is not None and hub_of(h).can_write_or_member(token, repo_id))
    )
    if not visible:
        h.error(401 if token is None else 404, "Repository not found", code="RepoNotFound")
        return None
    return repo


def _resolve(h, repo: Repo, revision: str) -> str | None:
    sha = repo.branches.get(revision, revision if revision in repo.commits else None)
    if sha is None:
        h.error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
    return sha


def hub_of(h) -> FakeHub:
    return h.server.hub  # type: ignore[attr-defined]


REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES: list[tuple[str, re.Pattern]] = [
    ("GET", re.compile(r"^/api/whoami-v2$")),
    ("POST", re.compile(r"^/api/repos/create$")),
    ("POST", re.compile(r"^/api/validate-yaml$")),
    ("GET", re.compile(rf"^/api/models/{REPO}/revision/(?P<rev>.+)$")),
    ("GET", re.compile(rf"^/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?$")),
    ("GET", re.compile(rf"^/api/models/{REPO}$")),
    ("POST", re.compile(rf"^/api/models/{REPO}/branch/(?P<rev>.+)$")),
    ("POST", re.compile(rf"^/api/models/{REPO}/preupload/(?P<rev>.+)$")),
    ("POST", re.compile(rf"^/api/models/{REPO}/commit/(?P<rev>.+)$")),
    ("GET", re.compile(rf"^/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")),
]


def route(h, method: str, path: str) -> None:
    for index, (verb, pattern) in enumerate(ROUTES):
        match = pattern.match(path)
        if match and (verb == method or (verb == "GET" and method == "HEAD")):
            return HANDLERS[index](h, **match.groupdict())
    h.error(404, f"fake hub: no route for {method} {path}")


def whoami(h) -> None:
    token = h.token()
    if not token:
        return h.error(401, "Invalid user token")
    hub = hub_of(h)
    access = {"displayName": "test token", "role": token.role}
    if token.role == "fineGrained":
        access["fineGrained"] = {"scoped": token.scoped or [], "global": []}
    orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org in hub.orgs.get(token.user, [])]
    h.send_json(
        {"type": "user", "name": token.user, "fullname": token.user, "orgs": orgs,
         "auth": {"type": "access_token", "accessToken": access}}
    )


def create_repo(h) -> None:
    token, hub = h.token(), hub_of(h)
    if not token:
        return h.error(401, "You must be authenticated to create a repo")
    payload = json.loads(h.body or b"{}")
    namespace = payload.get("organization") or token.user
    repo_id = f"{namespace}/{payload['name']}"
    if not hub.can_write(token, namespace):
        return h.error(403, f"You don't have the rights to create a model under the namespace {namespace!r}")
    if repo_id in hub.repos:
        # Like the Hub, a 409 still carries the URL: huggingface_hub's create_repo(exist_ok=True) reads it.
        message = "You already created this model repo"
        return h.send_json({"error": message, "url": f"{hub.url}/{repo_id}"}, status=409,
                           headers={"X-Error-Message": message})
    hub.create_repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
    h.send_json({"url": f"{hub.url}/{repo_id}", "name": repo_id})


def validate_yaml(h) -> None:
    h.send_json({"errors": [], "warnings": []})


def _info(h, repo: Repo, sha: str) -> None:
    files = repo.commits[sha]
    h.send_json(
        {"id": repo.repo_id, "modelId": repo.repo_id, "sha": sha, "private": repo.private,
         "siblings": [{"rfilename": name} for name in sorted(files)], "tags": [], "downloads": 0, "likes": 0}
    )


def model_info_rev(h, repo: str, rev: str) -> None:
    found = _repo_for_read(h, repo)
    if found and (sha := _resolve(h, found, rev)):
        _info(h, found, sha)


def model_info(h, repo: str) -> None:
    model_info_rev(h, repo, "main")


def tree(h, repo: str, rev: str, sub: str | None = None) -> None:
    found = _repo_for_read(h, repo)
    if found and (sha := _resolve(h, found, rev)):
        files = found.commits[sha]
        h.send_json(
            [{"type": "file", "path": name, "size": len(data), "oid": git_blob_sha(data)}
             for name, data in sorted(files.items()) if not sub or name.startswith(sub.rstrip("/") + "/")]
        )


def _repo_for_write(h, repo_id: str) -> Repo | None:
    token, hub = h.token(), hub_of(h)
    if token is False:
        h.bad_credentials()
        return None
    repo = hub.repos.get(repo_id)
    if repo is None or (repo.private and not (token and hub.can_write_or_member(token, repo_id))):
        h.error(401 if token is None else 404, "Repository not found", code="RepoNotFound")
        return None
    if not hub.can_write(token, repo_id.split("/")[0]):
        h.error(403, "You don't have write access to this repo")
        return None
    return repo


def create_branch(h, repo: str, rev: str) -> None:
    found = _repo_for_write(h, repo)
    if not found:
        return
    if rev in found.branches:
        return h.error(409, f"Reference already exists: {rev}")
    payload = json.loads(h.body or b"{}")
    start = payload.get("startingPoint") or "main"
    found.branches[rev] = found.branches.get(start, start)
    h.send_json({})


def preupload(h, repo: str, rev: str) -> None:
    found = _repo_for_write(h, repo)
    if not found:
        return
    files = json.loads(h.body)["files"]
    h.send_json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})


def commit(h, repo: str, rev: str) -> None:
    found = _repo_for_write(h, repo)
    if not found:
        return
    if rev not in found.branches:
        return h.error(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
    changes: dict[str, bytes | None] = {}
    summary = ""
    for line in h.body.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            summary = value.get("summary", "")
        elif key == "file":
            changes[value["path"]] = base64.b64decode(value["content"])
        elif key == "deletedFile":
            changes[value["path"]] = None
        else:
            return h.error(400, f"fake hub does not support commit key {key!r}")
    sha = hub_of(h).commit(found, rev, changes, summary)
    h.send_json({"commitUrl": f"{hub_of(h).url}/{repo}/commit/{sha}", "commitOid": sha, "success": True})


def resolve(h, repo: str, rev: str, file: str) -> None:
    found = _repo_for_read(h, repo)
    if not found or not (sha := _resolve(h, found, rev)):
        return
    data = found.commits[sha].get(file)
    if data is None:
        return h.error(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": sha})
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(len(data)))
    h.send_header("ETag", f'"{git_blob_sha(data)}"')
    h.send_header("X-Repo-Commit", sha)
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


HANDLERS = [whoami, create_repo, validate_yaml, model_info_rev, tree, model_info, create_branch, preupload,
            commit, resolve]


def serve(tokens: dict[str, Token] | None = None, orgs: dict[str, list[str]] | None = None) -> FakeHub:
    """Starts a FakeHub in a background thread."""
    return FakeHub(tokens=tokens, orgs=orgs).start()
