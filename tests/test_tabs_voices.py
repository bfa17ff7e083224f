"""The Voices and Generate tabs' domain calls: what they submit, what they play, what they stage."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from studio import jobs
from studio import voices as V
from studio.ui import generate_tab, voices_tab


def test_a_voice_from_an_upload_or_a_span_is_a_voice_job_reading_the_workspace_copy(ws, awb_wav, tmp_path):
    x, sr = sf.read(str(awb_wav))
    long_wav = tmp_path / "scot_long.wav"  # 8 s: room for a 5-12 s span
    sf.write(long_wav, np.concatenate([x, x]), sr)
    job_id = voices_tab.make_voice(ws, "scot", None, str(long_wav), 0.5, 6.0, "tiny")
    job = jobs.get_job(ws.db, job_id)
    assert job["kind"] == "voice" and job["status"] == "queued"
    p = job["params"]
    assert (p["name"], p["start"], p["end"], p["model"]) == ("scot", 0.5, 6.0, "tiny")
    stored = ws.inside(p["clip"])  # the upload was copied into the workspace, by content hash
    assert stored.read_bytes() == long_wav.read_bytes()
    sr, samples = voices_tab.span_audio(ws, p["clip"], 0.5, 6.0)
    assert sr == sf.info(str(awb_wav)).samplerate and len(samples) == int(5.5 * sr)
    with pytest.raises(Exception, match="voice name"):
        voices_tab.make_voice(ws, "bad name!", None, str(long_wav), 0, 0, "tiny")
    # the 5-12 s rule is checked here, before a job is queued, naming the user's file
    with pytest.raises(Exception, match=r"scot_long.wav: a voice prompt needs 5-12 s of speech, the span is 2.50 s"):
        voices_tab.make_voice(ws, "short", None, str(long_wav), 0.5, 3.0, "tiny")
    assert len(jobs.list_jobs(ws.db, kind="voice")) == 1
    # what the voice job records (its model part aside): the source by content hash; the table names the file
    kept = V.take_upload(ws, p["clip"], p["upload_name"])
    V.record_voice(ws, name="scot", npz=V.voice_file(ws, "scot"), model="tiny", source_path=ws.relative(kept),
                   source_clip_id=None, span=(0.5, 6.0), semantic_len=10, frames=412, job_id=job_id)
    assert [row[3] for row in voices_tab.voice_rows(ws)] == ["scot_long.wav"]


def test_generations_stage_for_listening_paired_by_text_and_seed(ws, awb_wav):
    wav = ws.generated_dir / "job-1" / "000.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(awb_wav.read_bytes())
    g = V.record_generation(ws, text="Hello there.", model="tiny", voice=None, adapters=[], seed=3,
                            params={"semantic_temperature": 0.7}, audio_path=wav, duration=1.0, job_id=None)
    first = generate_tab.send_to_listening(ws, g["id"], "base")
    again = generate_tab.send_to_listening(ws, g["id"], "adapter-a")
    assert first.name == again.name and first.read_bytes() == awb_wav.read_bytes()
    assert first.parent == ws.exports_dir / "listening" / "base"
    rows = generate_tab.history_rows(ws)
    assert rows[0][0] == g["id"] and rows[0][5] == "base" and "semantic_temperature=0.7" in rows[0][7]
    V.set_starred(ws, g["id"], True)
    assert generate_tab.history_rows(ws, starred_only=True)[0][1] == "★"
    params = generate_tab.generate_params(ws, "  Hi [laughs] ", "tiny", generate_tab.NO_VOICE, [(None, 1.0)],
                                          {"semantic_temperature": 0.6, "top_k": None}, 5, 2)
    assert params == {"text": "Hi [laughs]", "model": "tiny", "seed": 5, "variants": 2, "adapters": [],
                      "engine": "fast", "precision": "auto", "semantic_temperature": 0.6}


def test_the_span_preview_reads_a_voice_sized_span_only(ws, tmp_path):
    """The preview runs in the web process: a 30-minute upload with no end given plays 13 s at most,
    and a forged rate/channel count is refused, so no upload can fill this process's memory."""
    long_flac = tmp_path / "half-hour.flac"
    with sf.SoundFile(str(long_flac), "w", samplerate=48_000, channels=2, format="FLAC") as f:
        minute = np.zeros((48_000 * 60, 2), dtype="float32")
        for _ in range(30):
            f.write(minute)
    sr, samples = voices_tab.span_audio(ws, str(long_flac), 0, 0)
    assert sr == 48_000 and len(samples) == 13 * 48_000
    wide = tmp_path / "wide.wav"
    sf.write(str(wide), np.zeros((100, 16), dtype="float32"), 16_000)
    with pytest.raises(Exception, match="wide.wav: 16000 Hz x 16 channels"):
        voices_tab.span_audio(ws, str(wide), 0, 0)
