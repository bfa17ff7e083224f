"""Helpers for the listening tests: system folders cut from real speech, and a rater that plays by
the rules through the domain API or over HTTP."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import soundfile as sf

from studio.db import utcnow

# Names that must never reach a rater: systems, adapter, voice, file stems.
VOICE = "alice_marlowe_voice"
SYSTEM_NAMES = ("alice_voice_prompt", "alice_lora_r8_s1p5", "alice_real_recordings")
STEM = "alice_take_"


def make_folders(root: Path, speech: Path, names=SYSTEM_NAMES, n_items: int = 4, seconds: float = 0.6,
                 gains=(1.0, 0.25, 0.6)) -> dict[str, Path]:
    """One folder per system, n_items clips cut from real speech, each system at its own level and
    colour (a low-pass for the second) so that loudness matching has work to do."""
    from scipy.signal import butter, sosfiltfilt

    x, sr = sf.read(str(speech))
    step = int(seconds * sr)
    assert len(x) >= n_items * step // 2, "speech fixture too short"
    folders = {}
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_items):
            start = (i * step // 2) % max(1, len(x) - step)
            clip = x[start:start + step] * gains[k % len(gains)]
            if k == 1:
                clip = sosfiltfilt(butter(4, 2500, fs=sr, output="sos"), clip)
            sf.write(folder / f"{STEM}{i:02d}.wav", clip, sr)
        folders[name] = folder
    return folders


def played(trial: dict) -> tuple[dict, dict]:
    """plays and listened as an honest browser reports them for a trial's stimuli."""
    plays = {s["side"]: 1 for s in trial["stimuli"]}
    listened = {s["side"]: s["duration"] for s in trial["stimuli"]}
    return plays, listened


def later(seconds: float = 60):
    return utcnow() + timedelta(seconds=seconds)


def complete_rater(db, public_id: str, token: str, answer) -> list[dict]:
    """Consent and answer every trial through the domain API; `answer(trial_index, trial)` picks."""
    from studio.listening import votes

    votes.consent(db, public_id, token)
    acks = []
    while True:
        state = votes.current_trial(db, public_id, token)
        if state["done"]:
            return acks
        trial = state["trial"]
        plays, listened = played(trial)
        acks.append(votes.record_vote(db, public_id, token, {
            "trial": trial["id"], "response": answer(len(acks), trial), "plays": plays, "listened": listened,
            "response_time_ms": 1500}, now=later()))
