"""Test audio for the curation tests, made with espeak-ng and sox (both Debian packages), plus
the corpus layouts built from it. Everything is generated into a temporary folder."""
from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Is this the right way to the station?",
    "What a wonderful surprise this is!",
    "We recorded many sentences, one after another.",
    "Each of them is separated by a short pause.",
    "The studio cuts long recordings into pieces.",
    "Every piece should be between five and fifteen seconds.",
    "Silence between sentences is the natural place to cut.",
    "Loudness is brought to a common target level.",
    "Then the transcript is checked by a person.",
    "Finally the dataset is exported with a manifest.",
    "That is all for this recording, thank you.",
]


def run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


def speak(text: str, out: Path, voice: str = "en", speed: int = 160) -> Path:
    run("espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text)
    return out


def sox(src: Path, out: Path, *effects: str, rate: int | None = None, channels: int | None = None) -> Path:
    args = ["sox", str(src)]
    if rate:
        args += ["-r", str(rate)]
    if channels:
        args += ["-c", str(channels)]
    run(*args, str(out), *effects)
    return out


def long_speech(folder: Path) -> Path:
    """About 35-45 s of speech with sentence pauses (for segmentation)."""
    parts = []
    for i, s in enumerate(SENTENCES):
        p = speak(s, folder / f"_part{i}.wav", voice="en-us" if i % 2 else "en")
        parts.append(str(sox(p, folder / f"_padded{i}.wav", "pad", "0", "0.6", rate=22050)))
    out = folder / "long.wav"
    run("sox", *parts, str(out))
    for f in folder.glob("_p*.wav"):
        f.unlink()
    return out


def make_formats(folder: Path) -> dict[str, Path]:
    """The same sentence as WAV 22.05 kHz mono, FLAC 44.1 kHz stereo, OGG 48 kHz, MP3 16 kHz stereo, WAV 8 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    base = speak("Hello there. This is a test of the studio, with several words.", folder / "base.wav")
    return {
        "wav": base,
        "flac": sox(base, folder / "stereo44.flac", rate=44100, channels=2),
        "ogg": sox(base, folder / "clip48.ogg", rate=48000),
        "mp3": sox(base, folder / "stereo16.mp3", rate=16000, channels=2),
        "wav8k": sox(base, folder / "phone8k.wav", rate=8000),
    }


def make_bad(folder: Path, good: Path) -> dict[str, Path]:
    """One file per kind of bad input (and odd names, which are fine)."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {}
    bad["empty"] = folder / "empty.wav"
    bad["empty"].write_bytes(b"")
    bad["corrupt"] = folder / "corrupt.wav"
    data = good.read_bytes()
    bad["corrupt"].write_bytes(data[:44][:12] + b"\x00garbage" * 200)  # RIFF header, then junk
    bad["not_audio"] = folder / "notes.mp3"
    bad["not_audio"].write_text("these are my notes, not an mp3\n" * 50)
    bad["silent"] = folder / "silent.wav"
    run("sox", "-n", "-r", "16000", "-c", "1", str(bad["silent"]), "trim", "0", "2")
    bad["short"] = folder / "short.wav"
    sox(good, bad["short"], "trim", "0", "0.2")
    bad["text_ext"] = folder / "readme.pdf"
    bad["text_ext"].write_text("not audio")
    return bad


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def make_layouts(folder: Path, clips: list[Path]) -> dict[str, Path]:
    """LJSpeech, wav|text list, VCTK and Common Voice folders, each with two transcribed clips."""
    a, b = clips[:2]
    out = {}
    lj = folder / "LJSpeech-mini"
    (lj / "wavs").mkdir(parents=True)
    (lj / "wavs" / "LJ001-0001.wav").write_bytes(a.read_bytes())
    (lj / "wavs" / "LJ001-0002.wav").write_bytes(b.read_bytes())
    (lj / "metadata.csv").write_text("LJ001-0001|Printing, in the only sense|Printing, in the only sense\n"
                                     "LJ001-0002|in being comparatively modern.|in being comparatively modern.\n")
    out["ljspeech"] = lj
    lst = folder / "listed"
    (lst / "audio").mkdir(parents=True)
    (lst / "audio" / "one.wav").write_bytes(a.read_bytes())
    (lst / "audio" / "two.wav").write_bytes(b.read_bytes())
    (lst / "train.txt").write_text("audio/one.wav|alice|First listed line.\naudio/two.wav|bob|Second listed line?\n")
    out["list"] = lst
    vctk = folder / "VCTK"
    for spk, clip in (("p225", a), ("p226", b)):
        (vctk / "txt" / spk).mkdir(parents=True)
        (vctk / "wav48_silence_trimmed" / spk).mkdir(parents=True)
        (vctk / "txt" / spk / f"{spk}_001.txt").write_text(f"Please call Stella, says {spk}.\n")
        sox(clip, vctk / "wav48_silence_trimmed" / spk / f"{spk}_001_mic1.flac", rate=48000)
        sox(clip, vctk / "wav48_silence_trimmed" / spk / f"{spk}_001_mic2.flac", "vol", "0.8", rate=48000)
    out["vctk"] = vctk
    cv = folder / "cv-corpus"
    (cv / "clips").mkdir(parents=True)
    sox(a, cv / "clips" / "common_voice_en_1.mp3", rate=48000)
    sox(b, cv / "clips" / "common_voice_en_2.mp3", rate=48000)
    (cv / "validated.tsv").write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\n"
        "aaaaaaaaaaaaaaaa1\tcommon_voice_en_1.mp3\tCommon voice sentence one.\t2\t0\n"
        "bbbbbbbbbbbbbbbb2\tcommon_voice_en_2.mp3\tCommon voice sentence two!\t2\t0\n")
    out["commonvoice"] = cv
    return out
