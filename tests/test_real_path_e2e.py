"""The path a new user takes, on the real `small` preset: the real CLI, offline, against a hub
cache whose every file is what the hub serves in name, format and shape (tests/hub_fixture.py;
seeded random weights). Verify the weights, import and prepare real speech, transcribe it with a
real-format Whisper, tokenize, make a voice, use a built-in voice, LoRA-train all three stages at
bark-small's shapes, generate through the adapter at a scale with a voice, export the adapter
and load it with plain `peft` onto `BarkModel.from_pretrained`. Then the missing-weights path."""
from __future__ import annotations

import json
import subprocess
import time

import pytest
import soundfile as sf

from tests.conftest import cli

TEXTS = {"awb": "And you always want to see it in the superlative degree.",
         "slt": "He turned sharply, and faced Gregson across the table."}


class Steps:
    """Runs the CLI in one workspace and keeps each step's time (printed, for the report)."""

    def __init__(self, home, env):
        self.home, self.env, self.times = home, env, []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = cli(*args, home=self.home, env=self.env, check=check, timeout=2400)
        self.times.append((" ".join(args[:3]), round(time.monotonic() - started, 1)))
        return proc

    def json(self, *args: str) -> dict | list:
        return json.loads(self.run(*args, "--json").stdout)

    def report(self) -> str:
        return "\n".join(f"{t:7.1f} s  {what}" for what, t in self.times)


def _adapter_weights(folder, stage):
    from safetensors.torch import load_file

    return load_file(str(folder / stage / "adapter_model.safetensors"))


@pytest.mark.slow
@pytest.mark.timeout(5400)  # ~10 CPU-minutes of real work at bark-small shapes; far more under load
def test_the_real_small_path_offline(real_hub, ws, tmp_path, awb_wav, slt_wav):
    steps = Steps(ws.root, real_hub)

    # 1. the weights are all there and load (one line each)
    verified = steps.json("models", "verify", "small")
    assert verified["ok"] and [c["key"] for c in verified["components"]] == \
        ["bark", "voices", "hubert", "quantizer", "codec", "whisper"]
    assert all(c["present"] and c["loadable"] for c in verified["components"])

    # 2. real speech in; Whisper (openai's own checkpoint format, `base`) transcribes it
    steps.run("dataset", "create", "arctic")
    steps.run("dataset", "import", "arctic", str(awb_wav), str(slt_wav), "--speaker", "arctic")
    transcribed = steps.json("dataset", "transcribe", "arctic", "--wait")
    assert transcribed["status"] == "succeeded" and transcribed["result"]["model"] == "base", transcribed
    assert transcribed["result"]["transcribed"] == 2
    clips = steps.json("dataset", "clips", "arctic")
    for clip in clips:   # random weights hear nothing real: the user corrects the text, as in the Dataset tab
        steps.run("dataset", "text", str(clip["id"]), TEXTS["awb" if "awb" in clip["name"] else "slt"])
    prepared = steps.json("dataset", "prepare", "arctic", "--wait")   # the default SNR filter keeps clean speech
    assert prepared["status"] == "succeeded" and prepared["result"]["kept"] == 2, prepared

    # 3. tokens from the real HuBERT + quantizer and EnCodec formats
    tokens = steps.json("tokenize", "arctic", "--model", "small", "--wait")
    assert tokens["status"] == "succeeded", tokens

    # 4. a voice from a 7 s clip, and Bark's built-in voice
    long_clip = tmp_path / "long.wav"
    subprocess.run(["sox", str(awb_wav), str(slt_wav), str(long_clip)], check=True)
    voice = steps.json("voice", "create", "narrator", "--clip", str(long_clip), "--model", "small")
    assert voice["model"] == "small" and 5 <= voice["seconds"] <= 12
    builtin = steps.json("generate", "--model", "small", "--text", "Hello there.", "--voice", "v2/en_speaker_6",
                         "--max-semantic-tokens", "6", "--seed", "1")
    assert builtin["voice"] == "v2/en_speaker_6" and sf.info(builtin["files"][0]).samplerate == 24_000

    # 5. LoRA on all three stages at bark-small's shapes
    trained = steps.json("train", "--dataset", "arctic", "--model", "small", "--stages", "semantic,coarse,fine",
                         "--method", "lora", "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1",
                         "--save-every", "100", "--eval-every", "100", "--name", "arctic-small", "--wait")
    assert trained["status"] == "succeeded", trained.get("error")
    manifest = steps.json("adapters", "show", "arctic-small")["manifest"]
    assert manifest["base_model"] == "small" and manifest["stages"] == ["semantic", "coarse", "fine"]

    # 6. generate through the adapter at a scale, with the voice
    out = tmp_path / "adapted.wav"
    made = steps.json("generate", "--model", "small", "--text", "Hello there.", "--voice", "narrator",
                      "--adapter", "arctic-small:1.5", "--max-semantic-tokens", "6", "--seed", "1", "--out", str(out))
    audio, rate = sf.read(str(out))
    assert rate == 24_000 and len(audio) > 0 and made["out"] == str(out.resolve())

    # 7. the exported adapter loads with plain peft onto BarkModel.from_pretrained(the hub folder)
    exported = tmp_path / "export"
    steps.run("adapters", "export", "arctic-small", "--out", str(exported))
    from huggingface_hub import snapshot_download
    from peft import PeftModel
    from transformers import BarkModel

    folder = snapshot_download("suno/bark-small", cache_dir=real_hub["HF_HUB_CACHE"], local_files_only=True)
    bark = BarkModel.from_pretrained(folder)
    for stage, module in (("semantic", "semantic"), ("coarse", "coarse_acoustics"), ("fine", "fine_acoustics")):
        wrapped = PeftModel.from_pretrained(getattr(bark, module), str(exported / stage))
        saved = _adapter_weights(exported, stage)
        key = next(k for k in saved if "lora_B" in k)
        loaded = dict(wrapped.named_parameters())[key.replace(".weight", ".default.weight")]
        assert loaded.shape == saved[key].shape and (loaded.detach() == saved[key]).all()
        assert saved[key].abs().sum() > 0          # trained: LoRA's B starts at zero

    # 8. the same path with no --model at all: every command means `small`
    assert steps.json("tokenize", "arctic", "--wait")["status"] == "succeeded"    # small's cached tokens
    assert steps.json("voice", "create", "narrator-2", "--clip", str(long_clip))["model"] == "small"
    default = steps.json("train", "--dataset", "arctic", "--stages", "semantic", "--max-steps", "1",
                         "--batch-size", "1", "--grad-accum", "1", "--name", "arctic-default", "--wait")
    assert default["status"] == "succeeded", default.get("error")
    assert steps.json("adapters", "show", "arctic-default")["manifest"]["base_model"] == "small"
    # an adapter trained on small applies (a tiny default would refuse it as another base's)
    made = steps.json("generate", "--text", "Hello there.", "--voice", "v2/en_speaker_6",
                      "--adapter", "arctic-small:0.5", "--max-semantic-tokens", "6", "--seed", "2")
    assert made["model"] == "small" and made["voice"] == "v2/en_speaker_6"
    assert sf.info(made["files"][0]).samplerate == 24_000
    print("\n" + steps.report())


def test_missing_weights_say_what_and_how_in_one_line(ws, tmp_path):
    empty = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
             "BARK_STUDIO_WHISPER_ROOT": str(tmp_path / "whisper"), "HF_HUB_OFFLINE": "1"}
    verify = cli("models", "verify", "small", home=ws.root, env=empty, check=False)
    assert verify.returncode == 1
    assert verify.stderr.strip().splitlines() == [
        "error: small: missing or unreadable: Bark suno/bark-small; Bark built-in voices suno/bark-small; "
        "HuBERT base facebook/hubert-base-ls960; semantic quantizer GitMylo/bark-voice-cloning; "
        "EnCodec 24 kHz facebook/encodec_24khz; Whisper base; run `bark-studio models download small`"]
    generate = cli("generate", "--model", "small", "--text", "Hello.", home=ws.root, env=empty, check=False)
    lines = generate.stderr.strip().splitlines()
    assert generate.returncode == 1 and len(lines) == 1, generate.stderr
    assert "suno/bark-small" in lines[0] and "run `bark-studio models download small`" in lines[0]
    assert "Traceback" not in generate.stderr + generate.stdout


def test_download_runs_as_a_job_with_one_row_per_component(real_hub, ws, tmp_path):
    """Offline and complete, the job has nothing to fetch and reports what is where; offline and
    empty, it fails naming the first component it could not fetch."""
    done = json.loads(cli("models", "download", "small", "--job", "--wait", "--json", home=ws.root).stdout)
    assert done["status"] == "succeeded", done
    rows = done["result"]["components"]
    assert [r["key"] for r in rows] == ["bark", "voices", "hubert", "quantizer", "codec", "whisper"]
    assert all(r["present"] for r in rows) and done["result"]["missing"] is None
    empty = {"HF_HUB_CACHE": str(tmp_path / "hub"), "BARK_STUDIO_WHISPER_ROOT": str(tmp_path / "whisper")}
    failed = cli("models", "download", "small", "--job", "--wait", "--json", home=ws.root, env=empty, check=False)
    job = json.loads(failed.stdout)
    assert failed.returncode == 1 and job["status"] == "failed"
    assert job["error"].startswith("download of Bark suno/bark-small failed") and "\n" not in job["error"]
