"""The torch-free model catalog: what each preset needs, what is on disk, the one-line message.
(That it never loads torch: tests/test_architecture.py.)"""

from models import catalog


def test_small_lists_every_component_with_sizes():
    keys = [c.key for c in catalog.components("small")]
    assert keys == ["bark", "voices", "hubert", "quantizer", "codec", "whisper"]
    assert catalog.components("tiny") == []
    repos = {c.key: c.repo for c in catalog.components("small")}
    assert repos["bark"] == "suno/bark-small" and repos["hubert"] == "facebook/hubert-base-ls960"
    assert repos["codec"] == "facebook/encodec_24khz" and repos["whisper"] == "base"
    assert 2e9 < catalog.total_bytes("small") < 3e9          # bark-small's 1.68 GB plus the helpers
    assert catalog.total_bytes("large") > 4.5e9


def test_presets_read_the_catalog():
    from models import presets

    assert presets.PRESETS is catalog.PRESETS
    assert presets.resolve("small") == "suno/bark-small"


def test_missing_line_on_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("BARK_STUDIO_WHISPER_ROOT", str(tmp_path / "whisper"))
    line = catalog.missing_line("small")
    assert "\n" not in line and "suno/bark-small" in line and "Whisper base" in line
    assert line.endswith("run `bark-studio models download small`")
    assert catalog.missing_line("tiny") is None
    only_bark = catalog.missing_line("small", only=catalog.JOB_NEEDS["generate"])
    assert "HuBERT" not in only_bark and "suno/bark-small" in only_bark
    assert all(not s["present"] and s["bytes"] == 0 for s in catalog.state("small"))
    assert catalog.builtin_voices("small") == []
