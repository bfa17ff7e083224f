"""What the studio shows without the owner's login, its cookies and cross-site stance, the login rate
limit and the owner's one-time login link, and who gets a listening session's audio, all on real
`bark-studio serve` processes (SECURITY.md names these tests)."""
from __future__ import annotations

import json
import re
import shutil
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from studio.listening import sessions
from studio.listening.sessions import SystemSource
from studio.workspace import Workspace
from tests.conftest import Server, cli
from tests.listening_support import make_folders

WINDOW_S = 3  # the first lockout; each further failure doubles it (2 s left too little for a loaded box)
MAX_FAILURES = 3
# Distinctive names that an unauthenticated client must never see.
DATASET, CLIP, VOICE, SESSION = "zebra_dataset_q7", "zebra_clip_q7", "zebra_voice_q7", "zebra_session_q7"
SYSTEMS = ("zebra_system_alpha", "zebra_system_beta")
SECRETS = (DATASET, CLIP, VOICE, SESSION, *SYSTEMS)


@pytest.fixture(scope="module")
def site(tmp_path_factory, speech_dir):
    """A studio that holds a dataset with a clip, a voice and a listening session, all named above."""
    root = tmp_path_factory.mktemp("security-web")
    ws = Workspace.resolve(root / "home")
    clip = root / f"{CLIP}.wav"
    shutil.copyfile(speech_dir / "awb_arctic_a0007.wav", clip)
    cli("dataset", "create", DATASET, home=ws.root)
    cli("dataset", "import", DATASET, str(clip), home=ws.root)
    from studio import voices

    npz = ws.voices_dir / f"{VOICE}.npz"
    np.savez(npz, semantic_prompt=np.zeros(4, np.int64), coarse_prompt=np.zeros((2, 4), np.int64),
             fine_prompt=np.zeros((8, 4), np.int64))
    voices.record_voice(ws, name=VOICE, npz=npz, model="tiny", source_path=str(clip), source_clip_id=None,
                        span=(0.0, 1.0), semantic_len=4, frames=4, job_id=None)
    folders = make_folders(root / "systems", speech_dir / "awb_arctic_a0007.wav", names=SYSTEMS, n_items=2,
                           seconds=0.5)
    session = sessions.create_session(ws, name=SESSION, trials_per_rater=2,
                                      systems=[SystemSource(n, f) for n, f in folders.items()])
    env = {"BARK_STUDIO_LOGIN_MAX_FAILURES": str(MAX_FAILURES), "BARK_STUDIO_LOGIN_WINDOW_S": str(WINDOW_S)}
    server = Server(ws, env=env)
    yield SimpleNamespace(ws=ws, server=server, session=session, env=env, root=root)
    server.stop()


@pytest.fixture(scope="module")
def proxied(site):
    """A second studio on the same workspace that believes X-Forwarded-For from loopback, as it would
    behind a reverse proxy on the same host."""
    server = Server(site.ws, env={**site.env, "BARK_STUDIO_TRUSTED_PROXIES": "127.0.0.1"})
    yield server
    server.stop()


def _login(client: httpx.Client, password: str, **headers) -> httpx.Response:
    return client.post("/login", data={"username": "owner", "password": password}, headers=headers)


def test_nothing_of_the_workspace_reaches_a_client_without_the_login(site):
    anonymous = httpx.Client(base_url=site.server.url, timeout=30)
    owner = site.server.owner_client()
    assert DATASET in owner.get("/").text  # the names are there to be leaked (the owner sees them)
    paths = ["/", "/?page=", "/config", "/openapi.json", "/gradio_api/info", "/gradio_api/info?all_endpoints=true",
             "/gradio_api/openapi.json", "/docs", "/redoc", "/gradio_api/runs", "/gradio_api/docs"]
    for path in paths:
        for headers in ({}, {"Accept-Encoding": "identity"}, {"Host": "studio.example.com"}):
            res = anonymous.get(path, headers=headers)
            for name in SECRETS:
                assert name not in res.text, (path, headers, name, res.status_code)
            assert "on_preview" not in res.text and "on_import" not in res.text, (path, "handler names")
    assert re.search(r'"auth_required":\s*true', anonymous.get("/").text)  # the login form still shows
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert owner.get(path).status_code == 404  # no use to the owner either


def test_cookies_are_same_site_lax_and_cross_site_writes_are_refused(site):
    owner = site.server.owner_client()
    cookies = [c for c in owner.cookies.jar if c.name.startswith("access-token")]
    assert cookies and all(c.get_nonstandard_attr("SameSite", "").lower() == "lax" for c in cookies), \
        [(c.name, c._rest) for c in cookies]
    upload = {"files": ("take.wav", b"RIFF0000WAVE", "audio/wav")}
    for origin in ("https://evil.example", "null", f"http://localhost:{site.server.port}"):
        refused = owner.post("/gradio_api/upload", files=upload, headers={"Origin": origin})
        assert refused.status_code == 403, (origin, refused.status_code, refused.text)
    cross = owner.post("/gradio_api/upload", files=upload, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    same = owner.post("/gradio_api/upload", files=upload, headers={"Origin": site.server.url})
    assert same.status_code == 200, same.text
    # Logging out is a POST (a cross-site image or link cannot log the owner out), and it ends the session.
    assert owner.get("/logout").status_code == 405 and owner.get("/config").status_code == 200
    assert owner.post("/logout", headers={"Origin": "https://evil.example"}).status_code == 403
    assert owner.get("/config").status_code == 200
    assert owner.post("/logout", headers={"Origin": site.server.url}).status_code in (302, 303)
    owner.cookies.clear()
    assert owner.get("/config").status_code == 401


def test_forwarded_addresses_count_only_from_trusted_proxies(site, proxied):
    # Default: X-Forwarded-For from a loopback client is ignored, so rotating it buys nothing.
    c = site.server.client_from("127.0.0.11")  # its own address: these failures lock out no other test
    codes = [_login(c, "guess", **{"X-Forwarded-For": f"10.9.0.{i}"}).status_code for i in range(MAX_FAILURES + 2)]
    assert codes[:MAX_FAILURES] == [400] * MAX_FAILURES and codes[MAX_FAILURES:] == [429, 429], codes
    # Behind a configured proxy the forwarded address is the client: one client's failures lock out
    # that client only.
    p = httpx.Client(base_url=proxied.url, timeout=30)
    attacker, owner = {"X-Forwarded-For": "10.8.0.1"}, {"X-Forwarded-For": "10.8.0.2"}
    assert [_login(p, "guess", **attacker).status_code for _ in range(MAX_FAILURES + 1)][-1] == 429
    assert _login(p, proxied.password, **owner).status_code == 200


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_failed_logins_back_off_exponentially(proxied):
    c = httpx.Client(base_url=proxied.url, timeout=30)
    me = {"X-Forwarded-For": "10.7.0.1"}
    for _ in range(MAX_FAILURES):
        assert _login(c, "guess", **me).status_code == 400
    # The server counted the failure before it answered, so its lockout ends before locked + the lockout
    # (one monotonic clock for both processes): waits measured from there are long enough however slow
    # the requests; only a request slower than a whole window could arrive too late.
    locked = time.monotonic()
    first = _login(c, proxied.password, **me)  # even the right password waits
    assert first.status_code == 429 and 1 <= int(first.headers["retry-after"]) <= WINDOW_S + 1
    _sleep_until(locked + WINDOW_S + 0.1)
    assert _login(c, "guess", **me).status_code == 400  # one more failure: twice as long
    locked = time.monotonic()
    second = _login(c, proxied.password, **me)
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 2 * WINDOW_S - 1
    _sleep_until(locked + WINDOW_S + 0.1)
    assert _login(c, proxied.password, **me).status_code == 429  # the first window would have ended here
    _sleep_until(locked + 2 * WINDOW_S + 0.1)
    assert _login(c, proxied.password, **me).status_code == 200
    assert _login(c, "guess", **me).status_code == 400  # a success starts the count afresh


def test_the_failure_table_is_bounded():
    """A flood of clients (e.g. rotated addresses behind a trusted proxy) cannot grow it without end."""
    import asyncio

    from studio.security import LoginRateLimit

    async def refuse(scope, receive, send):
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limiter = LoginRateLimit(refuse, max_failures=3, window_s=60, table_size=100)

    async def attempt(client: str):
        async def send(message):
            pass
        scope = {"type": "http", "method": "POST", "path": "/login", "client": (client, 1), "headers": []}
        await limiter(scope, None, send)

    async def flood():
        for i in range(1000):
            await attempt(f"10.{i // 250}.{i % 250}.1")
    # its own thread: a browser test before this one may leave Playwright's loop running in this one
    import threading

    runner = threading.Thread(target=asyncio.run, args=(flood(),))
    runner.start()
    runner.join()
    assert len(limiter) == 100


def test_a_one_time_login_link_lets_the_owner_in_while_the_form_is_locked(site):
    c = site.server.client_from("127.0.0.12")  # its own address: these failures lock out no other test
    for _ in range(MAX_FAILURES):
        _login(c, "guess")
    assert _login(c, site.server.password).status_code == 429  # an attacker's failures block the form
    out = cli("login-link", "--url", site.server.url, "--json", home=site.ws.root)
    link = json.loads(out.stdout)["link"]
    token = link.rsplit("/", 1)[1]
    assert token not in (site.ws.root / "login_links.json").read_text()  # only its hash is kept
    page = c.get(link)
    assert page.status_code == 200 and 'method="post"' in page.text  # a link preview spends nothing
    used = c.post(link, headers={"Origin": site.server.url})
    assert used.status_code == 303 and c.get("/config").status_code == 200  # logged in
    again = site.server.client_from("127.0.0.13")
    assert again.post(link).status_code == 403 and again.get("/config").status_code == 401  # once only
    short = json.loads(cli("login-link", "--url", site.server.url, "--minutes", "0.02", "--json",
                           home=site.ws.root).stdout)["link"]
    time.sleep(1.5)
    assert again.post(short).status_code == 403 and again.get("/config").status_code == 401  # expired
    # `serve` prints a link at start, and it works.
    printed = re.search(r"http://\S+/login-link/\S+", open(site.server.log.name).read()).group(0)
    fresh = httpx.Client(base_url=site.server.url, timeout=30)
    assert fresh.post(printed).status_code == 303 and fresh.get("/config").status_code == 200


def test_stimuli_go_only_to_a_consenting_rater_of_an_open_session(site):
    session = sessions.get_session(site.ws, site.session["id"])
    link = sessions.add_raters(site.ws, session["id"], 1, base_url=site.server.url)[0]
    base = f"/listen/{session['public_id']}/{link['token']}"
    c = httpx.Client(base_url=site.server.url, timeout=30)
    from sqlalchemy import select

    from studio.listening.tables import ListenAssignment, ListenStimulus

    with site.ws.db.read() as s:
        mine = s.scalars(select(ListenStimulus.opaque_id).join(
            ListenAssignment, ListenAssignment.stimulus_a_id == ListenStimulus.id).where(
            ListenAssignment.rater_id == link["rater_id"])).first()
    before = c.get(f"{base}/audio/{mine}")
    assert before.status_code == 403 and not before.content.startswith(b"RIFF")  # no consent yet
    assert c.post(base + "/consent").status_code == 303
    trial = c.get(base + "/api/state").json()["trial"]
    url = trial["stimuli"][0]["url"]
    ok = c.get(url)
    assert ok.status_code == 200 and ok.content.startswith(b"RIFF")
    sessions.close_session(site.ws, session["id"])
    after = c.get(url)
    assert after.status_code == 403 and "closed" in after.json()["error"]


@pytest.mark.browser
def test_a_cross_site_form_cannot_upload_in_the_owners_name(site, browser):
    """Chromium, logged in as the owner, opens another site's page that posts a file to the studio."""
    context = browser.new_context()
    context.set_default_timeout(60_000)  # as Server.open_page: a loaded box is slow
    page = context.new_page()
    site.server.login(page)
    evil = "http://localhost:9/attack"  # another site: localhost is not 127.0.0.1
    form = (f'<form id="f" method="post" enctype="multipart/form-data" action="{site.server.url}/gradio_api/upload">'
            '<input type="file" name="files" id="i"></form><script>const t = new DataTransfer();'
            't.items.add(new File(["RIFF"], "planted.wav")); document.getElementById("i").files = t.files;'
            'document.getElementById("f").submit()</script>')
    page.route(evil, lambda route: route.fulfill(status=200, content_type="text/html", body=form))
    with page.expect_response(lambda r: "/gradio_api/upload" in r.url) as answer:
        page.goto(evil)
    assert answer.value.status in (401, 403), (answer.value.status, answer.value.text())
    # The same browser still works from the studio's own page.
    page.goto(site.server.url + "/")
    same = page.evaluate("""async () => { const f = new FormData(); f.append('files', new Blob(['RIFF']), 'a.wav');
        return (await fetch('/gradio_api/upload', {method: 'POST', body: f})).status; }""")
    assert same == 200
    context.close()


@pytest.mark.browser
def test_the_login_form_still_works_without_the_api_description(site, browser):
    context = browser.new_context()
    context.set_default_timeout(60_000)  # as Server.open_page: a loaded box is slow
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.server.url + "/")
    page.get_by_label("username").fill("owner")
    page.get_by_label("password").fill(site.server.password)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Voices").wait_for(timeout=60_000)
    assert errors == []
    context.close()
