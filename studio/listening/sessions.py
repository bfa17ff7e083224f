"""Creating listening sessions from audio, making rater links, and each rater's stored trials.

A session's stimuli are fresh loudness-matched WAVs under random names in
<workspace>/listening/<random>/; systems are matched item by item on file stems. Each rater's
trials (which pairs or clips, in which order, on which side) are drawn once, from a seed stored
on the rater row, and stored: the assignment is part of the record, never recomputed."""
from __future__ import annotations

import hashlib
import itertools
import random
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select

from models.files import write_wav
from studio.audio.loudness import apply_gain, peak_dbfs
from studio.db import utcnow
from studio.errors import NotFound, UserError
from studio.listening import audio
from studio.listening.tables import (ListenAssignment, ListenItem, ListenRater, ListenSession, ListenStimulus,
                                     ListenSystem, ListenVote)
from studio.workspace import Workspace

AB_QUESTIONS = {
    "similar": "Which sounds more like {voice}?",
    "natural": "Which sounds more natural?",
    "interesting": "Which is more interesting?",
}
MOS_QUESTION = "How would you rate the overall quality of this speech sample?"
MOS_LABELS = {5: "Excellent", 4: "Good", 3: "Fair", 2: "Poor", 1: "Bad"}  # ITU-T P.800 ACR
MOS_TRAP_MAX = 2  # a degraded trap rated above this is a failed trap
DEFAULT_EXPIRES_DAYS = 14.0
DEFAULT_TRIALS_PER_RATER = 20  # when not asked, and the pool is at least this large
SELECTOR_LEN = 16  # hex chars of the token's public half


@dataclass
class SystemSource:
    """One system of a session: a folder of audio files named by item (stem), or a hidden reference."""
    name: str
    folder: str | Path
    reference: bool = False  # real recordings, shown blind like any other system


def stimuli_root(ws: Workspace) -> Path:
    return ws.root / "listening"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def rater_link(base_url: str, session_public_id: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/listen/{session_public_id}/{token}"


# Creating a session ------------------------------------------------------------------------------

def resolve_question(test_type: str, question: str, voice_label: str | None) -> tuple[str, str]:
    """(preset, text) of the question raters read."""
    if test_type == "mos":
        return "mos", MOS_QUESTION
    question = (question or "natural").strip()
    if question in AB_QUESTIONS:
        if question == "similar":
            if not (voice_label or "").strip():
                raise UserError("the 'similar' question needs a voice label (what raters are told the voice is)")
            return question, AB_QUESTIONS[question].format(voice=voice_label.strip())
        return question, AB_QUESTIONS[question]
    if len(question) < 5:
        raise UserError(f"question {question!r}: use one of {', '.join(AB_QUESTIONS)} or a full sentence")
    return "custom", question


def trial_pool_size(test_type: str, n_items: int, n_systems: int) -> int:
    """Distinct trials: A/B, every item x pair of systems; MOS, every item x system."""
    return n_items * (n_systems * (n_systems - 1) // 2 if test_type == "ab" else n_systems)


def check_trials_fit(test_type: str, n_items: int, n_systems: int, trials_per_rater: int) -> None:
    """A rater answers each trial of the pool at most once: more trials than the pool holds would
    quietly give fewer."""
    pool = trial_pool_size(test_type, n_items, n_systems)
    if test_type == "ab":
        what = f"{n_items} item(s) x {n_systems * (n_systems - 1) // 2} pair(s) of systems = {pool} distinct trials"
    else:
        what = f"{n_items} item(s) x {n_systems} system(s) = {pool} distinct trials"
    if trials_per_rater > pool:
        raise UserError(f"{trials_per_rater} trials per rater asked, but this session has {what}: ask for at "
                        f"most {pool}, or add items (audio files present in every system's folder)")


def create_session(ws: Workspace, *, name: str, systems: list[SystemSource], test_type: str = "ab",
                   question: str = "natural", voice_label: str | None = None,
                   voice_reference: str | Path | None = None, allow_no_preference: bool = False,
                   trials_per_rater: int | None = None, n_gold: int = 0, seed: int | None = None,
                   target_lufs: float = audio.DEFAULT_TARGET_LUFS,
                   sample_rate: int = audio.DEFAULT_SAMPLE_RATE, item_texts: dict | None = None,
                   item_seeds: dict | None = None, job_id: int | None = None,
                   progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Prepare the stimuli and write the session. Returns the session's summary (get_session)."""
    name = (name or "").strip()
    if not name:
        raise UserError("a session needs a name")
    if test_type not in ("ab", "mos"):
        raise UserError(f"test type {test_type!r}: use 'ab' or 'mos'")
    if len(systems) < (2 if test_type == "ab" else 1):
        raise UserError(f"an {'A/B' if test_type == 'ab' else 'MOS'} session needs at least "
                        f"{2 if test_type == 'ab' else 1} systems, got {len(systems)}")
    names = [s.name.strip() for s in systems]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise UserError(f"system names must be non-empty and distinct: {names}")
    if trials_per_rater is not None and trials_per_rater < 1:
        raise UserError("trials per rater must be at least 1")
    if n_gold < 0:
        raise UserError("gold/trap trials per rater cannot be negative")
    preset, question_text = resolve_question(test_type, question, voice_label)
    seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
    notes: list[str] = []

    # Items: the stems every system has.
    files = {s.name: audio.audio_files(Path(s.folder)) for s in systems}
    keys = sorted(set.intersection(*(set(f) for f in files.values())))
    for s in systems:
        missing_elsewhere = sorted(set(files[s.name]) - set(keys))
        if missing_elsewhere:
            notes.append(f"system {s.name}: {len(missing_elsewhere)} file(s) skipped, not in every system "
                         f"({', '.join(missing_elsewhere[:5])})")
    if not keys:
        raise UserError("no item (file stem) is present in every system's folder: "
                        + "; ".join(f"{s.name}: {Path(s.folder)}" for s in systems))

    # Decode everything; a bad file drops its item (for every system) and is named in the notes.
    decoded: dict[tuple[str, str], object] = {}
    total, done = len(keys) * len(systems), 0
    for key in keys:
        clips = {}
        try:
            for s in systems:
                clips[s.name] = audio.load_mono(files[s.name][key], sample_rate)
                audio.loudness_lufs(clips[s.name], sample_rate, str(files[s.name][key]))
        except UserError as exc:
            notes.append(f"item {key} skipped: {exc}")
            continue
        finally:
            done += len(systems)
            if progress:
                progress(done, total, f"decoded {done}/{total} files")
        for sname, x in clips.items():
            decoded[(sname, key)] = x
    keys = [k for k in keys if (names[0], k) in decoded]
    if not keys:
        raise UserError("every item was skipped: " + "; ".join(notes[-3:]))
    pool = trial_pool_size(test_type, len(keys), len(systems))
    if trials_per_rater is None:  # not asked: every trial of the pool, up to the usual number
        trials_per_rater = min(DEFAULT_TRIALS_PER_RATER, pool)
    check_trials_fit(test_type, len(keys), len(systems), trials_per_rater)

    # Gold/trap stimuli: degraded copies of the hidden reference (or the first system).
    gold_source = next((s.name for s in systems if s.reference), names[0])
    traps = {}
    if n_gold > 0:
        for i, key in enumerate(keys):
            traps[key] = audio.degrade(decoded[(gold_source, key)], sample_rate, seed + i)
    ref_clip = None
    if voice_reference is not None:
        ref_clip = audio.load_mono(Path(voice_reference), sample_rate)

    # One common loudness for everything a rater hears.
    clips = list(decoded.values()) + list(traps.values()) + ([ref_clip] if ref_clip is not None else [])
    measured = [(audio.loudness_lufs(x, sample_rate), peak_dbfs(x)) for x in clips]
    target = audio.common_target(measured, target_lufs)
    if target < target_lufs - 0.05:
        notes.append(f"loudness target lowered from {target_lufs:.1f} to {target:.1f} LUFS so that no stimulus clips")

    out_dir = stimuli_root(ws) / secrets.token_hex(8)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(x) -> dict:
        lufs = audio.loudness_lufs(x, sample_rate)
        gain_db = target - lufs
        y = apply_gain(x, gain_db)
        path = out_dir / f"{secrets.token_hex(12)}.wav"
        write_wav(path, y, sample_rate)
        return {"path": ws.relative(path), "duration_s": len(y) / sample_rate, "source_lufs": lufs, "gain_db": gain_db,
                "opaque_id": secrets.token_hex(16)}

    item_texts, item_seeds = item_texts or {}, item_seeds or {}
    with ws.db.write() as s:
        session = ListenSession(
            public_id=secrets.token_hex(12), name=name, test_type=test_type, question=question_text,
            question_preset=preset, voice_label=(voice_label or "").strip() or None,
            allow_no_preference=bool(allow_no_preference) and test_type == "ab",
            trials_per_rater=int(trials_per_rater), n_gold=int(n_gold), seed=seed, target_lufs=target,
            sample_rate=sample_rate, status="open", job_id=job_id, notes=notes)
        s.add(session)
        s.flush()
        sys_rows = {}
        for pos, src in enumerate(systems):
            row = ListenSystem(session_id=session.id, name=src.name.strip(),
                               kind="reference" if src.reference else "system",
                               source=str(Path(src.folder).resolve()), position=pos)
            s.add(row)
            sys_rows[src.name] = row
        trap_system = None
        if traps:
            trap_system = ListenSystem(session_id=session.id, name=f"trap (degraded {gold_source})", kind="trap",
                                       source=f"degraded copies of {gold_source}", position=len(systems))
            s.add(trap_system)
        s.flush()
        for key in keys:
            item = ListenItem(session_id=session.id, key=key, text=item_texts.get(key), seed=item_seeds.get(key))
            s.add(item)
            s.flush()
            for src in systems:
                s.add(ListenStimulus(session_id=session.id, system_id=sys_rows[src.name].id, item_id=item.id,
                                     role="test", source_path=str(files[src.name][key].resolve()), seed=item.seed,
                                     **write(decoded[(src.name, key)])))
            if key in traps:
                s.add(ListenStimulus(session_id=session.id, system_id=trap_system.id, item_id=item.id, role="trap",
                                     source_path=f"degraded: {files[gold_source][key].resolve()}",
                                     seed=item.seed, **write(traps[key])))
        if ref_clip is not None:
            s.add(ListenStimulus(session_id=session.id, system_id=None, item_id=None, role="voice_reference",
                                 source_path=str(Path(voice_reference).resolve()), **write(ref_clip)))
        s.flush()
        session_id = session.id
    return get_session(ws, session_id)


# Reading sessions --------------------------------------------------------------------------------

def _session_row(s, session_id: int) -> ListenSession:
    row = s.get(ListenSession, int(session_id))
    if row is None:
        raise NotFound(f"no listening session {session_id}")
    return row


def get_session(ws: Workspace, session_id: int) -> dict:
    with ws.db.read() as s:
        row = _session_row(s, session_id)
        systems = s.scalars(select(ListenSystem).where(ListenSystem.session_id == row.id)
                            .order_by(ListenSystem.position)).all()
        n_items = s.scalar(select(func.count()).select_from(ListenItem).where(ListenItem.session_id == row.id))
        raters = s.scalars(select(ListenRater).where(ListenRater.session_id == row.id).order_by(ListenRater.id)).all()
        votes = dict(s.execute(select(ListenVote.rater_id, func.count()).where(ListenVote.session_id == row.id)
                               .group_by(ListenVote.rater_id)).all())
        trials = dict(s.execute(select(ListenAssignment.rater_id, func.count())
                                .where(ListenAssignment.session_id == row.id)
                                .group_by(ListenAssignment.rater_id)).all())
        return {
            "id": row.id, "name": row.name, "test_type": row.test_type, "question": row.question,
            "question_preset": row.question_preset, "voice_label": row.voice_label,
            "allow_no_preference": row.allow_no_preference, "trials_per_rater": row.trials_per_rater,
            "n_gold": row.n_gold, "seed": row.seed, "target_lufs": round(row.target_lufs, 2),
            "sample_rate": row.sample_rate, "status": row.status, "job_id": row.job_id, "notes": row.notes,
            "public_id": row.public_id,
            "created_at": row.created_at.isoformat(timespec="seconds") + "Z",
            "closed_at": row.closed_at.isoformat(timespec="seconds") + "Z" if row.closed_at else None,
            "n_items": n_items,
            "systems": [{"id": x.id, "name": x.name, "kind": x.kind, "source": x.source} for x in systems],
            "raters": [{"id": r.id, "label": r.label, "trials": trials.get(r.id, 0), "votes": votes.get(r.id, 0),
                        "excluded": r.excluded, "consented": r.consented_at is not None,
                        "finished": r.finished_at is not None,
                        "expires_at": r.expires_at.isoformat(timespec="seconds") + "Z"} for r in raters],
        }


def list_sessions(ws: Workspace) -> list[dict]:
    with ws.db.read() as s:
        rows = s.scalars(select(ListenSession).order_by(ListenSession.id.desc())).all()
        votes = dict(s.execute(select(ListenVote.session_id, func.count()).group_by(ListenVote.session_id)).all())
        raters = dict(s.execute(select(ListenRater.session_id, func.count()).group_by(ListenRater.session_id)).all())
        return [{"id": r.id, "name": r.name, "test_type": r.test_type, "status": r.status,
                 "raters": raters.get(r.id, 0), "votes": votes.get(r.id, 0),
                 "created_at": r.created_at.isoformat(timespec="seconds") + "Z"} for r in rows]


def close_session(ws: Workspace, session_id: int) -> dict:
    with ws.db.write() as s:
        row = _session_row(s, session_id)
        if row.status != "closed":
            row.status, row.closed_at = "closed", utcnow()
    return get_session(ws, session_id)


def set_excluded(ws: Workspace, session_id: int, rater_ids: list[int], excluded: bool = True) -> None:
    with ws.db.write() as s:
        _session_row(s, session_id)
        for rid in rater_ids:
            rater = s.get(ListenRater, int(rid))
            if rater is None or rater.session_id != int(session_id):
                raise NotFound(f"no rater {rid} in listening session {session_id}")
            rater.excluded = excluded


# Raters and their assignments --------------------------------------------------------------------

def add_raters(ws: Workspace, session_id: int, count: int, *, expires_days: float = DEFAULT_EXPIRES_DAYS,
               base_url: str | None = None) -> list[dict]:
    """Make `count` rater links. The token is shown here once; only its hash is stored."""
    from studio import served

    if count < 1:
        raise UserError("make at least one rater link")
    if expires_days <= 0:
        raise UserError("links must expire in the future (expires_days > 0)")
    base_url = base_url or served.public_url(ws)
    out = []
    with ws.db.write() as s:
        session = _session_row(s, session_id)
        if session.status != "open":
            raise UserError(f"listening session {session_id} is {session.status}; it takes no new raters")
        plan = _TrialPlan(s, session)
        index = s.scalar(select(func.count()).select_from(ListenRater).where(ListenRater.session_id == session.id))
        for _ in range(count):
            selector, secret = secrets.token_hex(SELECTOR_LEN // 2), secrets.token_urlsafe(32)
            seed = secrets.randbelow(2 ** 31)
            rater = ListenRater(session_id=session.id, label=f"rater {index + 1}", selector=selector,
                                token_hash=hash_secret(secret), assignment_seed=seed,
                                expires_at=utcnow() + timedelta(days=expires_days))
            s.add(rater)
            s.flush()
            for pos, trial in enumerate(plan.trials_for(index, seed)):
                s.add(ListenAssignment(session_id=session.id, rater_id=rater.id, position=pos,
                                       opaque_id=secrets.token_hex(16), **trial))
            token = selector + secret
            out.append({"rater_id": rater.id, "label": rater.label, "token": token,
                        "link": rater_link(base_url, session.public_id, token),
                        "expires_at": rater.expires_at.isoformat(timespec="seconds") + "Z"})
            index += 1
    return out


class _TrialPlan:
    """The pool of trials of a session, and each rater's share of it.

    The pool (A/B: every item x pair of systems; MOS: every test stimulus) is shuffled once with the
    session seed; rater k takes the next `trials_per_rater` entries after rater k-1 (wrapping), so
    raters together cover the pool evenly. Order and A/B sides come from the rater's own seed."""

    def __init__(self, s, session: ListenSession):
        self.session = session
        stimuli = s.scalars(select(ListenStimulus).where(ListenStimulus.session_id == session.id)).all()
        systems = s.scalars(select(ListenSystem).where(ListenSystem.session_id == session.id)
                            .order_by(ListenSystem.position)).all()
        test_systems = [x.id for x in systems if x.kind in ("system", "reference")]
        gold_system = next((x.id for x in systems if x.kind == "reference"), test_systems[0])
        by_key = {(st.system_id, st.item_id): st for st in stimuli if st.role == "test"}
        items = sorted({st.item_id for st in stimuli if st.role == "test"})
        if session.test_type == "ab":
            self.pool = [(item, by_key[(x, item)].id, by_key[(y, item)].id)
                         for item in items for x, y in itertools.combinations(test_systems, 2)]
        else:
            self.pool = [(st.item_id, st.id, None) for st in sorted(stimuli, key=lambda t: t.id) if st.role == "test"]
        random.Random(session.seed).shuffle(self.pool)
        self.traps = [(st.item_id, by_key[(gold_system, st.item_id)].id, st.id)
                      for st in sorted(stimuli, key=lambda t: t.id) if st.role == "trap"]
        random.Random(session.seed + 1).shuffle(self.traps)

    def trials_for(self, index: int, seed: int) -> list[dict]:
        rng = random.Random(seed)
        n = min(self.session.trials_per_rater, len(self.pool))
        start = (index * n) % len(self.pool)
        trials = []
        for j in range(n):
            item, first, second = self.pool[(start + j) % len(self.pool)]
            if second is None:  # MOS
                trials.append(dict(item_id=item, stimulus_a_id=first, stimulus_b_id=None, swapped=False,
                                   is_gold=False, expected=None))
            else:
                swapped = rng.random() < 0.5
                a, b = (second, first) if swapped else (first, second)
                trials.append(dict(item_id=item, stimulus_a_id=a, stimulus_b_id=b, swapped=swapped,
                                   is_gold=False, expected=None))
        n_gold = min(self.session.n_gold, len(self.traps)) if self.traps else 0
        for g in range(n_gold):
            item, clean, trap = self.traps[(index * n_gold + g) % len(self.traps)]
            if self.session.test_type == "mos":
                trials.append(dict(item_id=item, stimulus_a_id=trap, stimulus_b_id=None, swapped=False,
                                   is_gold=True, expected=f"<={MOS_TRAP_MAX}"))
            else:
                clean_on_a = rng.random() < 0.5
                a, b = (clean, trap) if clean_on_a else (trap, clean)
                trials.append(dict(item_id=item, stimulus_a_id=a, stimulus_b_id=b, swapped=not clean_on_a,
                                   is_gold=True, expected="A" if clean_on_a else "B"))
        rng.shuffle(trials)
        return trials
