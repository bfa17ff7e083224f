"""The rater's side on the real running server (`bark-studio serve`) and Debian's chromium: full A/B
and MOS sessions, nothing that names a system reaches the browser, every refusal over HTTP, CORS,
the owner's login and its rate limit, and 50 raters voting at once."""
from __future__ import annotations

import json
import re
import shutil
import time
from types import SimpleNamespace

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from studio.db import utcnow
from studio.listening import audio, sessions
from studio.listening.sessions import SystemSource
from studio.listening.tables import ListenRater, ListenStimulus, ListenSystem, ListenVote
from studio.workspace import Workspace
from tests.conftest import Server
from tests.listening_support import STEM, SYSTEM_NAMES, VOICE, make_folders, played

LOGIN_WINDOW_S = 4
SESSION_NAME = "alice_owner_only_session_name"
PHONE = {"viewport": {"width": 390, "height": 800}, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory, speech_dir):
    root = tmp_path_factory.mktemp("listen-web")
    ws = Workspace.resolve(root / "home")
    src = root / VOICE  # the voice's name is in every source path
    folders = make_folders(src, speech_dir / "awb_arctic_a0007.wav", n_items=3, seconds=0.5)
    voice_ref = src / f"{VOICE}_reference.wav"
    shutil.copyfile(speech_dir / "slt_arctic_a0009.wav", voice_ref)
    server = Server(ws, env={"BARK_STUDIO_LOGIN_MAX_FAILURES": "3", "BARK_STUDIO_LOGIN_WINDOW_S": str(LOGIN_WINDOW_S)})
    yield SimpleNamespace(ws=ws, server=server, folders=folders, src=src, voice_ref=voice_ref, root=root)
    server.stop()


def _session(site, **kw) -> dict:
    names = kw.pop("names", SYSTEM_NAMES)
    systems = [SystemSource(n, site.folders[n], reference=(n == "alice_real_recordings")) for n in names]
    return sessions.create_session(site.ws, systems=systems, **{"name": SESSION_NAME, **kw})


def _link(site, session: dict, count: int = 1) -> list[dict]:
    return sessions.add_raters(site.ws, session["id"], count, base_url=site.server.url)


def _answer_round(page, answer: str) -> None:
    """Play every sample to its end, then answer (the answer buttons unlock only then)."""
    page.locator("#play-A").wait_for()
    n = page.locator(".player").count()
    assert page.locator(f"#answer-{answer}").is_disabled(), "a vote must wait for playback"
    for k, side in enumerate("AB"[:n]):
        page.click(f"#play-{side}")
        page.locator(".player.heard").nth(k).wait_for()
    page.locator(f"#answer-{answer}:enabled").click()


def _votes(ws, rater_id) -> list[ListenVote]:
    with ws.db.read() as s:
        return s.scalars(select(ListenVote).where(ListenVote.rater_id == rater_id).order_by(ListenVote.id)).all()


@pytest.mark.browser
def test_a_rater_takes_a_full_ab_session_on_a_phone_and_nothing_leaks(site, browser):
    session = _session(site, question="similar", voice_label="the speaker of the reference clip",
                       voice_reference=site.voice_ref, allow_no_preference=True, trials_per_rater=3, n_gold=1)
    rater = _link(site, session)[0]
    received: list[tuple[str, dict, bytes | None]] = []
    context = browser.new_context(**PHONE)
    context.set_default_timeout(60_000)  # as Server.open_page: a loaded box is slow
    context.on("response", lambda r: received.append((r.url, r.headers, _body(r))))
    page = context.new_page()
    page.goto(rater["link"])
    assert "Consent" in page.inner_text("main")
    page.click("#consent")
    page.wait_for_url("**/trial")
    expect(page.locator("#question")).to_have_text("Which sounds more like the speaker of the reference clip?")
    expect(page.locator("#progress-text")).to_have_text("Round 1 of 4")
    page.click("#play-reference")
    _answer_round(page, "A")
    page.locator("#progress-text", has_text="Round 2 of 4").wait_for()
    _answer_round(page, "none")
    page.locator("#progress-text", has_text="Round 3 of 4").wait_for()
    page.close()  # the rater closes the tab ...

    page = context.new_page()  # ... and comes back through the same link: it resumes at round 3
    page.goto(rater["link"])
    page.wait_for_url("**/trial")
    page.locator("#progress-text", has_text="Round 3 of 4").wait_for()
    _answer_round(page, "B")
    page.locator("#progress-text", has_text="Round 4 of 4").wait_for()
    _answer_round(page, "A")
    page.wait_for_url("**/done")
    assert "All 4 answers are saved" in page.inner_text("main")
    context.close()

    rows = _votes(site.ws, rater["rater_id"])
    assert [v.response for v in rows] == ["A", "none", "B", "A"]
    for v in rows:
        assert v.plays_a >= 1 and v.plays_b >= 1 and v.response_time_ms > 0 and v.client_submitted_at
        assert v.system_b_id is not None and v.server_elapsed_ms > 0
    with site.ws.db.read() as s:
        durations = {st.id: st.duration_s for st in s.scalars(select(ListenStimulus))}
        stimuli = s.scalars(select(ListenStimulus).where(ListenStimulus.session_id == session["id"])).all()
        systems = s.scalars(select(ListenSystem).where(ListenSystem.session_id == session["id"])).all()
    assert all(v.listened_a_s >= durations[v.stimulus_a_id] - 0.3 for v in rows)
    assert sum(v.is_gold for v in rows) == 1

    # Everything the browser received: no system, adapter or voice name, no file name or path.
    forbidden = {*SYSTEM_NAMES, VOICE, STEM, str(site.root), str(site.ws.root), "/tmp/", SESSION_NAME}
    forbidden |= {x.name for x in systems} | {x.source for x in systems}
    forbidden |= {st.path for st in stimuli} | {st.path.rsplit("/", 1)[1] for st in stimuli}
    forbidden |= {st.source_path for st in stimuli}
    kinds = set()
    for url, headers, body in received:
        ctype = headers.get("content-type", "")
        kinds.add(ctype.split(";")[0])
        text = url + "\n" + json.dumps(headers) + "\n" + (body or b"").decode("latin-1")
        for secret in forbidden:
            assert secret.lower() not in text.lower(), f"{secret!r} leaked in {url}"
        if ctype.startswith("audio/"):
            assert not {"content-disposition", "last-modified", "etag"} & set(headers), headers
            assert headers.get("cache-control") == "no-store"
            if body is not None:  # None: the tab closed while this clip was still loading
                assert audio.wav_chunks(body) == ["fmt ", "data"], f"audio metadata in {url}"
    assert {"text/html", "text/css", "application/json", "audio/wav"} <= kinds, kinds
    assert kinds & {"application/javascript", "text/javascript"}, kinds
    assert sum(1 for u, h, b in received if h.get("content-type", "").startswith("audio/") and b) >= 5


def _body(response) -> bytes | None:
    """The response's bytes; None when it has none to give (a redirect, or a page closed while the
    body was still loading: the test closes the rater's tab mid-session on purpose)."""
    try:
        return response.body()
    except Exception:  # noqa: BLE001 - playwright raises its own Error types here
        return None


@pytest.mark.browser
def test_a_rater_takes_a_full_mos_session(site, browser):
    session = _session(site, names=SYSTEM_NAMES[:2], test_type="mos", trials_per_rater=3, n_gold=1)
    rater = _link(site, session)[0]
    context = browser.new_context(**PHONE)
    context.set_default_timeout(60_000)  # as Server.open_page: a loaded box is slow
    page = context.new_page()
    page.goto(rater["link"])
    page.click("#consent")
    page.wait_for_url("**/trial")
    expect(page.locator("#question")).to_have_text(sessions.MOS_QUESTION)
    labels = page.locator("#answers button").all_inner_texts()
    assert labels == ["5 – Excellent", "4 – Good", "3 – Fair", "2 – Poor", "1 – Bad"]
    for k, score in enumerate(["5", "4", "2", "3"]):
        page.locator("#progress-text", has_text=f"Round {k + 1} of 4").wait_for()
        _answer_round(page, score)
    page.wait_for_url("**/done")
    context.close()
    rows = _votes(site.ws, rater["rater_id"])
    assert [v.score for v in rows] == [5, 4, 2, 3] and all(v.system_b_id is None for v in rows)
    assert sum(v.is_gold for v in rows) == 1


def test_every_refusal_over_http(site):
    session = _session(site, names=SYSTEM_NAMES[:2], trials_per_rater=3)
    other = _session(site, names=SYSTEM_NAMES[:2], trials_per_rater=3, name="other")
    me, you = _link(site, session, 2)
    stranger = _link(site, other)[0]
    url, pid = site.server.url, session["public_id"]
    c = httpx.Client(base_url=url, timeout=30)

    def base(token, public_id=pid):
        return f"/listen/{public_id}/{token}"

    for token in (me["token"], you["token"]):
        assert c.post(base(token) + "/consent").status_code == 303
    state = c.get(base(me["token"]) + "/api/state").json()
    trial = state["trial"]
    plays, listened = played(trial)
    vote = {"trial": trial["id"], "response": "A", "plays": plays, "listened": listened}
    audio_url = trial["stimuli"][0]["url"]

    wrong = me["token"][:16] + "x" * (len(me["token"]) - 16)
    for token, public_id in ((wrong, pid), ("nonsense", pid), (stranger["token"], pid), (me["token"], other["public_id"])):
        b = base(token, public_id)
        assert c.get(b).status_code == 403
        assert c.get(b + "/api/state").status_code == 403
        assert c.post(b + "/api/vote", json=vote).status_code == 403
        assert c.get(b + "/audio/" + audio_url.rsplit("/", 1)[1]).status_code == 403
    # Another rater of the same session: not my trial, not my audio (unless also assigned to them).
    assert c.post(base(you["token"]) + "/api/vote", json=vote).status_code == 403
    with site.ws.db.read() as s:
        theirs = s.scalars(select(ListenStimulus.opaque_id).where(ListenStimulus.session_id == other["id"])).first()
    assert c.get(base(me["token"]) + "/audio/" + theirs).status_code == 404

    # Playback must end before a vote counts: as reported, and by the server's clock.
    short = c.post(base(me["token"]) + "/api/vote", json={**vote, "listened": {"A": 0.05, "B": 0.05}})
    assert short.status_code == 422 and "to the end" in short.json()["error"]
    # A client that claims full playback at once is refused by the server's clock (3 s samples here).
    long_folders = make_folders(site.root / "long", site.src / f"{VOICE}_reference.wav", names=SYSTEM_NAMES[:2],
                                n_items=1, seconds=2.5)
    slow = sessions.create_session(site.ws, name=SESSION_NAME, trials_per_rater=1,
                                   systems=[SystemSource(n, f) for n, f in long_folders.items()])
    hasty = _link(site, slow)[0]["token"]
    hb = base(hasty, slow["public_id"])
    c.post(hb + "/consent")
    t = c.get(hb + "/api/state").json()["trial"]
    plays_h, listened_h = played(t)
    fast = c.post(hb + "/api/vote", json={"trial": t["id"], "response": "A", "plays": plays_h, "listened": listened_h})
    assert fast.status_code == 422 and "to the end" in fast.json()["error"]
    assert c.post(base(me["token"]) + "/api/vote", data={"trial": trial["id"]}).status_code == 415
    time.sleep(1.2)
    first = c.post(base(me["token"]) + "/api/vote", json=vote)
    again = c.post(base(me["token"]) + "/api/vote", json={**vote, "response": "B"})  # double submit
    assert first.status_code == again.status_code == 200
    assert not first.json()["duplicate"] and again.json()["duplicate"]
    assert len(_votes(site.ws, me["rater_id"])) == 1 and _votes(site.ws, me["rater_id"])[0].response == "A"

    # Expired link.
    with site.ws.db.write() as s:
        s.execute(update(ListenRater).where(ListenRater.id == you["rater_id"]).values(expires_at=utcnow()))
    expired = c.get(base(you["token"]) + "/api/state")
    assert expired.status_code == 403 and "expired" in expired.json()["error"]

    # Closed session: no more votes, and the link says so.
    nxt = c.get(base(me["token"]) + "/api/state").json()["trial"]
    plays, listened = played(nxt)
    time.sleep(1.2)
    sessions.close_session(site.ws, session["id"])
    closed = c.post(base(me["token"]) + "/api/vote", json={"trial": nxt["id"], "response": "B", "plays": plays,
                                                           "listened": listened})
    assert closed.status_code == 403 and "closed" in closed.json()["error"]
    assert c.get(base(me["token"])).status_code == 403
    assert len(_votes(site.ws, me["rater_id"])) == 1


def test_cross_origin_requests_get_no_permissive_cors(site):
    session = _session(site, names=SYSTEM_NAMES[:2], trials_per_rater=1)
    token = _link(site, session)[0]["token"]
    rater = f"/listen/{session['public_id']}/{token}"
    c = site.server.client_from("127.0.0.21")  # its own address: its failed logins lock out no other test
    for origin in ("https://evil.example", "null"):
        for host in ("127.0.0.1", "studio.example.com"):  # gradio trusts any origin when the host is not local
            headers = {"Origin": origin, "Host": host}
            responses = [c.get(rater, headers=headers), c.get(rater + "/api/state", headers=headers),
                         c.post(rater + "/api/vote", json={}, headers=headers), c.get("/config", headers=headers),
                         c.get("/gradio_api/info", headers=headers),
                         c.post("/login", data={"username": "x", "password": "y"}, headers=headers),
                         c.options("/gradio_api/queue/join", headers={**headers, "Access-Control-Request-Method": "POST"}),
                         c.options(rater + "/api/vote", headers={**headers, "Access-Control-Request-Method": "POST"})]
            for r in responses:
                assert "access-control-allow-origin" not in r.headers, (origin, host, r.request.url, r.headers)
                assert r.headers.get("access-control-allow-credentials") != "true"


def test_the_studio_needs_the_owners_login_and_limits_attempts(site):
    c = site.server.client_from("127.0.0.22")  # its own address: a lockout no other test inherits
    assert c.get("/config").status_code == 401
    assert c.get("/gradio_api/info").status_code == 401
    assert re.search(r'"auth_required":\s*true', c.get("/").text)
    for _ in range(3):
        assert c.post("/login", data={"username": "owner", "password": "guess"}).status_code == 400
    locked = c.post("/login", data={"username": "owner", "password": site.server.password})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1  # even the right password
    time.sleep(LOGIN_WINDOW_S + 0.5)
    ok = c.post("/login", data={"username": "owner", "password": site.server.password})
    assert ok.status_code == 200
    assert c.get("/config").status_code == 200  # the session cookie opens the studio
    assert httpx.get(site.server.url + "/config").status_code == 401  # a fresh client still cannot


@pytest.mark.browser
def test_owner_reads_results_in_the_listen_tab(site, browser):
    session = _session(site, names=SYSTEM_NAMES[:2], test_type="mos", trials_per_rater=2)
    from tests.listening_support import complete_rater

    for k, link in enumerate(_link(site, session, 3)):
        complete_rater(site.ws.db, session["public_id"], link["token"], lambda i, t: str(3 + (i + k) % 3))
    context = browser.new_context()
    context.set_default_timeout(60_000)  # as Server.open_page: a loaded box is slow
    page = context.new_page()
    site.server.login(page)
    page.goto(site.server.url + "/")
    page.get_by_role("tab", name="Listen").click()
    page.get_by_role("button", name="Refresh").click()
    page.locator("#listen-session input").click()
    page.get_by_role("option", name=re.compile(rf"^{session['id']}: ")).click()
    page.get_by_role("button", name="Show results").click()
    report = page.locator("#listen-results")
    report.get_by_text("95% CI (t)").wait_for()
    assert SYSTEM_NAMES[0] in report.inner_text() and "6 votes used" in report.inner_text()
    context.close()


@pytest.mark.slow
def test_fifty_raters_vote_at_once_while_a_job_writes_progress(site):
    """50 raters x 20 votes through the running server, while another process runs a job that
    commits progress as fast as it can: 1000 rows, no 'database is locked'. Prints percentiles."""
    from bench.listening_load import prepare, report, run_load, start_progress_writer, stop_progress_writer

    public_id, tokens, base_tokens = prepare(site.ws, n_items=20, n_raters=50)
    baseline = run_load(site.server.url, public_id, base_tokens, 20)
    writer = start_progress_writer(site.ws.root)
    load = run_load(site.server.url, public_id, tokens, 20)
    steps = stop_progress_writer(writer, site.ws)
    print("\n" + report(baseline, load, steps))
    assert load["errors"] == [] and load["acked"] == 1000
    assert steps > 1  # the job kept committing progress while the raters voted
    with site.ws.db.read() as s:
        n = s.scalar(select(func.count()).select_from(ListenVote).join(ListenRater)
                     .where(ListenRater.token_hash.in_([sessions.hash_secret(t[16:]) for t in tokens])))
    assert n == 1000
    assert "database is locked" not in open(site.server.log.name).read()
