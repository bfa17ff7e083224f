"""A 400 MB request to any kind of route, streamed (chunked, no length) or with its length declared,
is refused before the server holds it: the running server's memory stays within 100 MB of where it
was (sampled every 20 ms while the request runs), logged in or not."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.conftest import Server

BODY_MB = 400
CHUNK = b"a" * (1024 * 1024)
ALLOWED_GROWTH_MB = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from studio.workspace import Workspace

    ws = Workspace.resolve(tmp_path_factory.mktemp("security-limits") / "home")
    s = Server(ws, env={"BARK_STUDIO_MAX_UPLOAD_MB": "2"})
    yield s
    s.stop()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


PREAMBLE = {  # a well-formed start, so that each parser really reads on
    "multipart/form-data; boundary=b": b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.wav"\r\n'
                                       b"Content-Type: audio/wav\r\n\r\n",
    "application/x-www-form-urlencoded": b"username=owner&password=",
    "application/json": b'{"data": ["',
}


def _body(ctype: str):
    yield PREAMBLE[ctype]
    for _ in range(BODY_MB):
        yield CHUNK


def _peak_growth(pid: int, request) -> tuple[float, object]:
    """Run `request()` while sampling the server's RSS; (peak growth in MB, its result or exception)."""
    before = _rss_mb(pid)
    peak, done = [before], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(_rss_mb(pid))
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    try:
        result = request()
    except httpx.TransportError as exc:  # the server may close the connection on a refused body
        result = exc
    finally:
        time.sleep(0.3)  # anything still arriving shows up now
        done.set()
        t.join()
    return max(peak) - before, result


JSON, FORM, MULTIPART = "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"
ROUTES = [  # (what, path, content type, as the owner)
    ("rater vote", "/listen/x/y/api/vote", JSON, False),
    ("rater consent", "/listen/x/y/consent", FORM, False),
    ("login form", "/login", FORM, False),
    ("Gradio queue, anonymous", "/gradio_api/queue/join", JSON, False),
    ("Gradio queue, owner", "/gradio_api/queue/join", JSON, True),
    ("Gradio call API, owner", "/gradio_api/call/on_preview", JSON, True),
    ("upload, anonymous", "/gradio_api/upload", MULTIPART, False),
    ("upload, owner", "/gradio_api/upload", MULTIPART, True),
    ("no such route", "/no/such/route", JSON, False),
]


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_400_mb_request_to_any_route_leaves_memory_flat(server, declared):
    pid = server.proc.pid
    owner = server.owner_client()
    anonymous = httpx.Client(base_url=server.url, timeout=60)
    for what, path, ctype, as_owner in ROUTES:
        client = owner if as_owner else anonymous
        headers = {"Content-Type": ctype}
        if declared:
            headers["Content-Length"] = str(BODY_MB * len(CHUNK) + len(PREAMBLE[ctype]))
        growth, result = _peak_growth(pid, lambda: client.post(path, content=_body(ctype), headers=headers))
        assert growth < ALLOWED_GROWTH_MB, f"{what}: the server grew by {growth:.0f} MB"
        if isinstance(result, httpx.Response):
            assert result.status_code in (401, 403, 404, 405, 413), (what, result.status_code, result.text[:200])
    assert server.proc.poll() is None
    assert owner.get("/config").status_code == 200  # still serving


def test_small_requests_still_pass_the_limits(server):
    owner = server.owner_client()
    at_limit = owner.post("/gradio_api/upload", files={"files": ("ok.wav", b"\0" * (2 * 1024 * 1024), "audio/wav")})
    assert at_limit.status_code == 200, at_limit.text
    over = owner.post("/gradio_api/upload", files={"files": ("big.wav", b"\0" * (3 * 1024 * 1024), "audio/wav")})
    assert over.status_code == 413
    vote = httpx.post(server.url + "/listen/x/y/api/vote", json={"trial": "t", "pad": "x" * 5000})
    assert vote.status_code == 413  # a vote is a few hundred bytes
    assert httpx.post(server.url + "/listen/x/y/api/vote", json={"trial": "t"}).status_code == 403  # no such link
