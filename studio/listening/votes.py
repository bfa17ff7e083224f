"""What a rater's link may do: open its session, consent, get the current trial, fetch that
trial's audio, and vote. Every refusal is a `Refused` with the HTTP status the web layer sends.

A token is `selector + secret`: the selector finds the rater row, the secret's SHA-256 is
compared with the stored hash in constant time. A vote is checked and written in one
transaction (BEGIN IMMEDIATE) and is idempotent: the (rater, trial) pair is unique, and a
replay answers with the vote already recorded."""
from __future__ import annotations

import hmac
from datetime import datetime

from sqlalchemy import func, or_, select, update

from studio.db import Database, utcnow
from studio.listening.sessions import MOS_LABELS, SELECTOR_LEN, hash_secret
from studio.listening.tables import ListenAssignment, ListenRater, ListenSession, ListenStimulus, ListenVote

_DUMMY_HASH = hash_secret("no such rater")
PLAYBACK_SLACK_S = 0.25  # timeupdate events come every ~250 ms, so reported time may fall short by that
SERVER_ELAPSED_FRACTION = 0.9  # of the summed durations: the least real time a trial can take


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def authenticate(s, session_public_id: str, token: str, now: datetime | None = None) -> tuple[ListenSession, ListenRater]:
    """The rater and session a token opens; 403 for a wrong, expired or other session's token."""
    now = now or utcnow()
    token = token or ""
    selector, secret = token[:SELECTOR_LEN], token[SELECTOR_LEN:]
    rater = s.scalar(select(ListenRater).where(ListenRater.selector == selector)) if secret else None
    matches = hmac.compare_digest(rater.token_hash if rater else _DUMMY_HASH, hash_secret(secret))
    if rater is None or not matches:
        raise Refused(403, "this link is not valid")
    session = s.get(ListenSession, rater.session_id)
    if not hmac.compare_digest(session.public_id.encode(), (session_public_id or "").encode()):
        raise Refused(403, "this link is not valid")
    if rater.expires_at <= now:
        raise Refused(403, "this link has expired")
    return session, rater


def page_state(db: Database, session_public_id: str, token: str) -> dict:
    """Which page the link shows: consent, listening, done or closed."""
    with db.read() as s:
        session, rater = authenticate(s, session_public_id, token)
        done, total = _progress(s, rater)
        if session.status != "open":
            page = "closed"
        elif rater.consented_at is None:
            page = "consent"
        elif done >= total:
            page = "done"
        else:
            page = "listen"
        return {"page": page, "test_type": session.test_type, "done": done, "total": total}


def consent(db: Database, session_public_id: str, token: str) -> None:
    with db.write() as s:
        session, rater = authenticate(s, session_public_id, token)
        if session.status != "open":
            raise Refused(403, "this listening session is closed")
        if rater.consented_at is None:
            rater.consented_at = utcnow()


def _progress(s, rater: ListenRater) -> tuple[int, int]:
    total = s.scalar(select(func.count()).select_from(ListenAssignment).where(ListenAssignment.rater_id == rater.id))
    done = s.scalar(select(func.count()).select_from(ListenVote).where(ListenVote.rater_id == rater.id))
    return done, total


def _audio_url(session: ListenSession, token: str, stim: ListenStimulus) -> str:
    return f"/listen/{session.public_id}/{token}/audio/{stim.opaque_id}"


def current_trial(db: Database, session_public_id: str, token: str) -> dict:
    """The rater's next unanswered trial (resuming where they left off) and their progress.
    The first time a trial is served its presentation time is stamped (the server's clock)."""
    with db.read() as s:
        session, rater = authenticate(s, session_public_id, token)
        if session.status != "open":
            raise Refused(403, "this listening session is closed")
        if rater.consented_at is None:
            raise Refused(403, "please read the instructions and agree first")
        done, total = _progress(s, rater)
        voted = select(ListenVote.assignment_id).where(ListenVote.rater_id == rater.id)
        trial = s.scalar(select(ListenAssignment).where(ListenAssignment.rater_id == rater.id,
                                                        ListenAssignment.id.not_in(voted))
                         .order_by(ListenAssignment.position).limit(1))
        out = {"test_type": session.test_type, "question": session.question,
               "allow_no_preference": session.allow_no_preference,
               "labels": [{"value": k, "label": v} for k, v in MOS_LABELS.items()] if session.test_type == "mos" else [],
               "progress": {"done": done, "total": total}, "done": trial is None, "trial": None, "reference": None}
        ref = s.scalar(select(ListenStimulus).where(ListenStimulus.session_id == session.id,
                                                    ListenStimulus.role == "voice_reference"))
        if ref is not None:
            out["reference"] = {"url": _audio_url(session, token, ref), "duration": round(ref.duration_s, 3)}
        if trial is None:
            return out
        sides = [("A", s.get(ListenStimulus, trial.stimulus_a_id))]
        if trial.stimulus_b_id is not None:
            sides.append(("B", s.get(ListenStimulus, trial.stimulus_b_id)))
        out["trial"] = {"id": trial.opaque_id, "number": done + 1,
                        "stimuli": [{"side": side, "url": _audio_url(session, token, st),
                                     "duration": round(st.duration_s, 3)} for side, st in sides]}
        needs_stamp = trial.presented_at is None
        trial_id = trial.id
    if needs_stamp:
        with db.write() as s:
            s.execute(update(ListenAssignment).where(ListenAssignment.id == trial_id,
                                                     ListenAssignment.presented_at.is_(None))
                      .values(presented_at=utcnow()))
    return out


def stimulus_file(db: Database, session_public_id: str, token: str, opaque_id: str) -> str:
    """Workspace-relative path of a stimulus this rater was assigned (or the voice reference)."""
    with db.read() as s:
        session, rater = authenticate(s, session_public_id, token)
        stim = s.scalar(select(ListenStimulus).where(ListenStimulus.opaque_id == opaque_id,
                                                     ListenStimulus.session_id == session.id))
        if stim is None:
            raise Refused(404, "no such sample")
        if stim.role != "voice_reference":
            mine = s.scalar(select(ListenAssignment.id).where(
                ListenAssignment.rater_id == rater.id,
                or_(ListenAssignment.stimulus_a_id == stim.id, ListenAssignment.stimulus_b_id == stim.id)).limit(1))
            if mine is None:
                raise Refused(403, "this sample is not part of your link")
        return stim.path


def _int(payload: dict, key: str, lo: int, hi: int, default=None):
    value = payload.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise Refused(422, f"bad vote: {key} must be a number from {lo} to {hi}")
    return int(value)


def _side_numbers(payload: dict, key: str, sides: list[str], hi: float) -> dict[str, float]:
    raw = payload.get(key) or {}
    if not isinstance(raw, dict):
        raise Refused(422, f"bad vote: {key} must map sides to numbers")
    out = {}
    for side in sides:
        v = raw.get(side, 0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi:
            raise Refused(422, f"bad vote: {key}[{side}] must be a number from 0 to {hi}")
        out[side] = float(v)
    return out


def record_vote(db: Database, session_public_id: str, token: str, payload: dict, now: datetime | None = None) -> dict:
    """Check and store one vote; a replay of a recorded trial returns it with duplicate=True."""
    if not isinstance(payload, dict):
        raise Refused(422, "bad vote: expected a JSON object")
    with db.write() as s:
        now = now or utcnow()
        session, rater = authenticate(s, session_public_id, token, now)
        if session.status != "open":
            raise Refused(403, "this listening session is closed; votes are no longer accepted")
        if rater.consented_at is None:
            raise Refused(403, "please read the instructions and agree first")
        trial = s.scalar(select(ListenAssignment).where(ListenAssignment.opaque_id == str(payload.get("trial", ""))))
        if trial is None or trial.rater_id != rater.id:
            raise Refused(403, "this trial is not part of your link")
        existing = s.scalar(select(ListenVote).where(ListenVote.rater_id == rater.id,
                                                     ListenVote.assignment_id == trial.id))
        if existing is not None:
            done, total = _progress(s, rater)
            return {"ok": True, "duplicate": True, "response": existing.response,
                    "progress": {"done": done, "total": total}, "done": done >= total}

        stim_a = s.get(ListenStimulus, trial.stimulus_a_id)
        stim_b = s.get(ListenStimulus, trial.stimulus_b_id) if trial.stimulus_b_id is not None else None
        sides = ["A"] + (["B"] if stim_b is not None else [])
        response = str(payload.get("response", "")).strip()
        score = chosen = None
        if session.test_type == "mos":
            if response not in {str(k) for k in MOS_LABELS}:
                raise Refused(422, "bad vote: a rating is a whole number from 1 to 5")
            score = int(response)
        else:
            allowed = {"A", "B"} | ({"none"} if session.allow_no_preference else set())
            if response not in allowed:
                raise Refused(422, f"bad vote: answer one of {', '.join(sorted(allowed))}")
            if response != "none":
                chosen = (stim_a if response == "A" else stim_b).system_id
        plays = _side_numbers(payload, "plays", sides, 10_000)
        listened = _side_numbers(payload, "listened", sides, 86_400)
        response_time_ms = _int(payload, "response_time_ms", 0, 86_400_000)

        # Playback to the end, as the browser reports it and as the server's clock allows.
        durations = {"A": stim_a.duration_s, **({"B": stim_b.duration_s} if stim_b is not None else {})}
        for side, duration in durations.items():
            if plays[side] < 1 or listened[side] < duration - PLAYBACK_SLACK_S:
                raise Refused(422, f"play sample {side} to the end before voting")
        if trial.presented_at is None:
            raise Refused(422, "this trial was never played; reload the page")
        elapsed = (now - trial.presented_at).total_seconds()
        if elapsed < SERVER_ELAPSED_FRACTION * sum(durations.values()) - PLAYBACK_SLACK_S:
            raise Refused(422, "play every sample to the end before voting")

        client_time = payload.get("client_time")
        s.add(ListenVote(
            session_id=session.id, rater_id=rater.id, assignment_id=trial.id, item_id=trial.item_id,
            system_a_id=stim_a.system_id, system_b_id=stim_b.system_id if stim_b is not None else None,
            stimulus_a_id=stim_a.id, stimulus_b_id=stim_b.id if stim_b is not None else None,
            swapped=trial.swapped, is_gold=trial.is_gold, seed=stim_a.seed,
            plays_a=int(plays["A"]), plays_b=int(plays.get("B", 0)),
            listened_a_s=listened["A"], listened_b_s=listened.get("B", 0.0),
            response=response, score=score, chosen_system_id=chosen, response_time_ms=response_time_ms,
            server_elapsed_ms=int(elapsed * 1000), presented_at=trial.presented_at,
            client_submitted_at=str(client_time)[:40] if client_time is not None else None, recorded_at=now))
        s.flush()
        done, total = _progress(s, rater)
        if done >= total and rater.finished_at is None:
            rater.finished_at = now
        return {"ok": True, "duplicate": False, "response": response,
                "progress": {"done": done, "total": total}, "done": done >= total}
