"""Rater pages and their JSON routes, installed on the studio's FastAPI app beside (not inside)
the owner's Gradio studio. Everything here is addressed by random ids: the session's public id,
the rater's token, trial and stimulus opaque ids. Responses carry no file names, no system names
and no caching or referrer headers that could carry the link elsewhere."""
from __future__ import annotations

import html
import json

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from studio.limits import VOTE_BYTES as MAX_VOTE_BYTES  # BodyLimit refuses larger votes before reading them
from studio.listening import votes
from studio.listening.votes import Refused
from studio.workspace import Workspace

PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; "
                               "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
}

INSTRUCTIONS = {
    "ab": ("In each round you hear two short speech samples, A and B. Play both to the end (you may replay "
           "them), then answer the question shown above them."),
    "mos": ("In each round you hear one short speech sample. Play it to the end (you may replay it), then rate "
            "the overall quality from 5 (Excellent) to 1 (Bad)."),
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
           f'<link rel="stylesheet" href="/static/listen.css"></head><body><main class="card">{body}</main>'
           f'</body></html>')
    return HTMLResponse(doc, status_code=status, headers=PRIVATE_HEADERS)


def _refused_page(exc: Refused) -> HTMLResponse:
    return _page("Listening test", f'<h1>Listening test</h1><p class="notice">{html.escape(exc.message)}.</p>',
                 exc.status)


def _json(data: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=PRIVATE_HEADERS)


def install(app: FastAPI, ws: Workspace) -> None:
    base = "/listen/{session_id}/{token}"

    @app.get(base, response_class=HTMLResponse, include_in_schema=False)
    def entry(session_id: str, token: str):
        try:
            state = votes.page_state(ws.db, session_id, token)
        except Refused as exc:
            return _refused_page(exc)
        here = f"/listen/{session_id}/{token}"
        if state["page"] == "closed":
            return _page("Listening test", '<h1>Listening test</h1><p class="notice">This listening session is '
                                           'closed. Thank you for your interest.</p>', 403)
        if state["page"] == "done":
            return RedirectResponse(f"{here}/done", status_code=303, headers=PRIVATE_HEADERS)
        if state["page"] == "listen":
            return RedirectResponse(f"{here}/trial", status_code=303, headers=PRIVATE_HEADERS)
        body = (
            '<h1>Listening test</h1>'
            f'<p>{html.escape(INSTRUCTIONS[state["test_type"]])}</p>'
            f'<p>There are {state["total"]} rounds; it takes a few minutes. Your progress is saved after every '
            'answer, so you can close the page and come back to this link later.</p>'
            '<ul><li>Use headphones in a quiet place if you can, at a comfortable volume.</li>'
            '<li>There are no right answers; go with your first impression.</li>'
            '<li>A few rounds check attention.</li></ul>'
            '<h2>Consent</h2>'
            '<p>Your answers, how often and how long you played each sample, and your response times are stored '
            'under a random rater number and used only to evaluate speech systems. No name, e-mail or device '
            'information is recorded. You can stop at any time.</p>'
            f'<form method="post" action="{here}/consent"><button class="primary" id="consent" type="submit">'
            'I agree, start</button></form>')
        return _page("Listening test", body)

    @app.post(base + "/consent", include_in_schema=False)
    def give_consent(session_id: str, token: str):
        try:
            votes.consent(ws.db, session_id, token)
        except Refused as exc:
            return _refused_page(exc)
        return RedirectResponse(f"/listen/{session_id}/{token}/trial", status_code=303, headers=PRIVATE_HEADERS)

    @app.get(base + "/trial", response_class=HTMLResponse, include_in_schema=False)
    def trial_page(session_id: str, token: str):
        try:
            state = votes.page_state(ws.db, session_id, token)
        except Refused as exc:
            return _refused_page(exc)
        here = f"/listen/{session_id}/{token}"
        if state["page"] != "listen":
            return RedirectResponse(here if state["page"] != "done" else f"{here}/done", status_code=303,
                                    headers=PRIVATE_HEADERS)
        body = (
            f'<div id="app" data-base="{html.escape(here)}">'
            '<div class="progress" aria-hidden="true"><div class="bar" id="bar"></div></div>'
            '<p class="muted" id="progress-text"></p>'
            '<h1 id="question"></h1>'
            '<div id="reference" class="reference" hidden></div>'
            '<div id="players" class="players"></div>'
            '<p class="muted" id="hint"></p>'
            '<div id="answers" class="answers"></div>'
            '<p class="notice" id="error" hidden></p>'
            '</div><noscript>This listening test needs JavaScript.</noscript>'
            '<script src="/static/listen.js" defer></script>')
        return _page("Listening test", body)

    @app.get(base + "/done", response_class=HTMLResponse, include_in_schema=False)
    def done_page(session_id: str, token: str):
        try:
            state = votes.page_state(ws.db, session_id, token)
        except Refused as exc:
            return _refused_page(exc)
        if state["page"] in ("consent", "listen"):
            return RedirectResponse(f"/listen/{session_id}/{token}", status_code=303, headers=PRIVATE_HEADERS)
        return _page("Listening test", f'<h1 id="done">Thank you!</h1><p>All {state["done"]} answers are saved. '
                                       'You can close this page.</p>')

    @app.get(base + "/api/state", include_in_schema=False)
    def api_state(session_id: str, token: str):
        try:
            return _json(votes.current_trial(ws.db, session_id, token))
        except Refused as exc:
            return _json({"error": exc.message}, exc.status)

    @app.post(base + "/api/vote", include_in_schema=False)
    async def api_vote(session_id: str, token: str, request: Request):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _json({"error": "send the vote as application/json"}, 415)
        body = await request.body()
        if len(body) > MAX_VOTE_BYTES:
            return _json({"error": "vote too large"}, 413)
        try:
            payload = json.loads(body)
        except ValueError:
            return _json({"error": "bad vote: not JSON"}, 422)
        from starlette.concurrency import run_in_threadpool

        try:
            return _json(await run_in_threadpool(votes.record_vote, ws.db, session_id, token, payload))
        except Refused as exc:
            return _json({"error": exc.message}, exc.status)

    @app.get(base + "/audio/{stimulus_id}", include_in_schema=False)
    def audio(session_id: str, token: str, stimulus_id: str):
        try:
            # Audio only for a rater who consented, of a session still open, with rounds to play.
            page = votes.page_state(ws.db, session_id, token)["page"]
            if page != "listen":
                raise Refused(403, {"consent": "agree to the test first", "closed": "this listening session is "
                                    "closed", "done": "all your answers are saved"}[page])
            rel = votes.stimulus_file(ws.db, session_id, token, stimulus_id)
        except Refused as exc:
            return _json({"error": exc.message}, exc.status)
        data = ws.inside(rel).read_bytes()
        return Response(data, media_type="audio/wav", headers=PRIVATE_HEADERS)
