"""Compressed-audio bombs through the real CLI: refused by duration without expanding in memory, and
prepare on long audio streaming it with bounded memory and keeping no silent segment.

Memory is the peak RSS of the real `bark-studio` process, read by a small wrapper process whose only
children are the command and what it starts (getrusage(RUSAGE_CHILDREN) after waiting for it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.curation_bombs import write_flac_bomb

MB = 1024 * 1024
_MEASURE = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr, "
            "'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")


def measured_cli(home, *args: str, env: dict | None = None) -> dict:
    """Run `bark-studio ARGS` and return its exit status, output and peak RSS in MB."""
    full_env = {**os.environ, "BARK_STUDIO_HOME": str(home), **(env or {})}
    wrapper = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "studio.cli", *args],
                             capture_output=True, text=True, env=full_env, timeout=600)
    result = json.loads(wrapper.stdout)
    result["peak_mb"] = result.pop("peak_kb") / 1024
    return result


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """The issue's two bombs, built here in a few seconds: 8.8 MB of FLAC holding 2 h 27 min of
    48 kHz stereo (3.4 GB as float32 samples, ~385x), the same without its length in the header
    (only decoding can tell), and 0.9 MB holding 10 h of 8 kHz silence."""
    folder = tmp_path_factory.mktemp("bombs")
    out = {"bomb": write_flac_bomb(folder / "bomb.flac", 8850, 48_000, 2, noise_frames=386),
           "unlabelled": write_flac_bomb(folder / "no-length.flac", 8850, 48_000, 2, noise_frames=386,
                                         declare_length=False),
           "ten_hours": write_flac_bomb(folder / "ten-hours.flac", 36_000, 8_000, 1)}
    assert 8.7e6 < out["bomb"].stat().st_size < 8.9e6  # 8.8 MB
    assert 0.8e6 < out["ten_hours"].stat().st_size < 1.0e6
    return out


def test_flac_bombs_are_refused_by_duration_within_500_mb(tmp_path, bombs):
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "studio.cli", "dataset", "create", "bombs"], check=True,
                   capture_output=True, env={**os.environ, "BARK_STUDIO_HOME": str(home)})
    run = measured_cli(home, "dataset", "import", "bombs", str(bombs["bomb"]), str(bombs["unlabelled"]),
                       str(bombs["ten_hours"]))
    assert run["rc"] == 3, run  # refused files: exit 3, one line each, no traceback
    lines = run["out"].splitlines()
    assert lines[0] == "imported 0 clip(s) into bombs"
    assert "refused: bomb.flac: 2 h 27 min of audio is over the 30 min limit per file" in lines[1]
    assert "refused: no-length.flac: its audio runs past the 30 min limit per file" in lines[2]
    assert "refused: ten-hours.flac: 10 h of audio is over the 30 min limit per file" in lines[3]
    assert "Traceback" not in run["out"] + run["err"] and str(home) not in run["out"]
    print(f"import of the bombs: peak RSS {run['peak_mb']:.0f} MB")
    assert run["peak_mb"] < 500, run["peak_mb"]
    clips = subprocess.run([sys.executable, "-m", "studio.cli", "dataset", "clips", "bombs", "--json"], check=True,
                           capture_output=True, text=True, env={**os.environ, "BARK_STUDIO_HOME": str(home)})
    assert json.loads(clips.stdout) == []


def test_prepare_streams_long_audio_and_keeps_no_silent_segment(tmp_path):
    """20 min of 48 kHz stereo, silence with a little noise: prepare --no-vad decodes it as a stream
    (the old whole decode took ~1.3 GB on this file) and drops every segment with its reason."""
    long = write_flac_bomb(tmp_path / "long-room.flac", 20 * 60, 48_000, 2, noise_frames=40, noise_level=0.003)
    home = tmp_path / "home"
    env = {**os.environ, "BARK_STUDIO_HOME": str(home)}
    for args in (("dataset", "create", "long"), ("dataset", "import", "long", str(long))):
        subprocess.run([sys.executable, "-m", "studio.cli", *args], check=True, capture_output=True, env=env)
    run = measured_cli(home, "dataset", "prepare", "long", "--no-vad", "--wait", "--json")
    assert run["rc"] == 0, run
    print(f"prepare --no-vad of 20 min: peak RSS {run['peak_mb']:.0f} MB")
    assert run["peak_mb"] < 600, run["peak_mb"]
    shown = subprocess.run([sys.executable, "-m", "studio.cli", "dataset", "show", "long", "--json"], check=True,
                           capture_output=True, text=True, env=env)
    report = json.loads(shown.stdout)
    [clip] = report["prepared_clips"]
    assert len(clip["segments"]) == 80 and clip["kept"] == 0
    reasons = {g["reject_reason"].split(" ")[0] for g in clip["segments"]}
    assert reasons <= {"silent", "snr"} and "silent" in reasons
    assert all(g["reject_reason"] for g in clip["segments"])
