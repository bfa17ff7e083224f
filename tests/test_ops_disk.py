"""A full disk, for real: the workspace lives on a small tmpfs (mounted for the test; skipped where
mounting is not permitted). Importing until it fills leaves no partial file, says so in one line,
and loses nothing already stored; the web UI says the same line, without a server path."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from studio.errors import DISK_FULL
from studio.workspace import Workspace, sha256_file
from tests.conftest import Server, cli

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode}); needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def takes(tmp_path, awb_wav) -> list[Path]:
    """Six distinct real recordings of ~1 MB each (the fixture, repeated, with different padding)."""
    out = []
    for i in range(1, 7):
        take = tmp_path / "takes" / f"take{i:02d}.wav"
        take.parent.mkdir(exist_ok=True)
        subprocess.run(["sox", str(awb_wav), str(take), "repeat", "7", "pad", "0", f"0.{i:02d}"], check=True)
        out.append(take)
    return out


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith(".tmp") or (p.parent.name == "tmp" and p.name.startswith("import-")))


def _fill(disk: Path) -> None:
    """Take the last free blocks (the filler is what a user would delete)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_importing_until_the_disk_is_full_leaves_nothing_behind_and_says_so_in_one_line(small_disk, takes):
    home = small_disk / "home"
    cli("dataset", "create", "voice", home=home)
    out = cli("dataset", "import", "voice", *map(str, takes), home=home, check=False)  # 6 MB onto 4 MB
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stdout + out.stderr
    first_refused = re.match(r"error: (take\d+\.wav) and the (\d+) file\(s\) after it: not imported, "
                             r"the disk holding the workspace is full \((\d+) imported before it\)", lines[0])
    assert first_refused, lines[0]
    stored = takes[:int(first_refused[3])]
    assert stored and takes[len(stored)].name == first_refused[1]
    assert "Traceback" not in lines[0] and str(home) not in lines[0]
    assert _leftovers(home) == []

    again = cli("dataset", "import", "voice", str(takes[-1]), home=home, check=False)  # a retry adds nothing
    assert again.returncode == 1 and len((again.stdout + again.stderr).strip().splitlines()) == 1
    assert _leftovers(home) == []

    _fill(small_disk)  # now even the database cannot grow
    create = cli("dataset", "create", "other", home=home, check=False)
    assert create.returncode == 1 and (create.stdout + create.stderr).strip() == f"error: {DISK_FULL}"

    (small_disk / "filler").unlink()
    clips = json.loads(cli("dataset", "clips", "voice", "--json", home=home).stdout)
    assert sorted(c["name"] for c in clips) == sorted(t.name for t in stored)  # nothing stored was lost
    ws = Workspace(home)
    for c in clips:
        blob = ws.root / c["blob"]
        assert sha256_file(blob) == c["sha256"]
    assert len(list(ws.audio_dir.rglob("*.wav"))) == len(stored)  # and no unreferenced blob was left


@pytest.mark.slow
def test_the_studio_says_the_disk_is_full_in_one_line_without_server_paths(small_disk, monkeypatch):
    home = small_disk / "home"
    monkeypatch.setenv("BARK_STUDIO_HOME", str(home))
    ws = Workspace.resolve(home)
    server = Server(ws)
    try:
        client = server.owner_client()
        _fill(small_disk)
        event = client.post("/gradio_api/call/on_create", json={"data": ["fresh"]})
        assert event.status_code == 200, event.text
        stream = client.get(f"/gradio_api/call/on_create/{event.json()['event_id']}").text
    finally:
        (small_disk / "filler").unlink(missing_ok=True)
        server.stop()
    assert "event: error" in stream, stream
    shown = [json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:")]
    assert shown == [DISK_FULL], stream  # the one line, no SQLite error, no server path
