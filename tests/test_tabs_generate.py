"""Generate tab domain: a generation from the history goes to the emergent-behaviour log with the
parameters that reproduce it."""
import shutil

import pytest

from studio import voices
from studio.errors import NotFound
from studio.experiments.emergent import list_entries
from studio.ui.generate_tab import send_to_emergent_log


def test_a_generation_sent_to_the_emergent_log_keeps_its_parameters(ws, awb_wav):
    wav = ws.generated_dir / "g1.wav"
    shutil.copyfile(awb_wav, wav)
    gen = voices.record_generation(ws, text="Hello [laughs]", model="tiny", voice=None, adapters=[["a", 1.5]],
                                   seed=7, params={"semantic_temperature": 0.7}, audio_path=wav,
                                   duration=3.5, job_id=None)
    entry = send_to_emergent_log(ws, gen["id"], notes="odd laugh")
    assert entry["generation_id"] == gen["id"] and entry["source"] == "manual"
    assert entry["params"]["text"] == "Hello [laughs]" and entry["params"]["seed"] == 7
    assert [e["id"] for e in list_entries(ws)] == [entry["id"]]
    with pytest.raises(NotFound):
        send_to_emergent_log(ws, 999)


# --- engine and precision through the real generate job (inline: no worker is alive) ---------------

def _job(ws, **params):
    from workers.dispatch import submit

    job = submit(ws, "generate", {"text": "Hello there.", "model": "tiny", "seed": 3, "semantic_max_new_tokens": 16,
                                    **params},
                 wait=True)
    assert job["status"] == "succeeded", job.get("error")
    return job["result"]


def _audio(path):
    import soundfile as sf

    audio, sr = sf.read(path, dtype="float32")
    assert sr == 24_000 and len(audio) > 0
    return audio


def test_the_generate_job_runs_the_fast_engine_unless_reference_is_asked(ws, monkeypatch):
    import numpy as np

    from models import fast_generation
    from models import generation as G
    from models.attention import resolve_precision
    from models.presets import load_bark, load_text_tokenizer

    calls = []
    real = fast_generation.run_rows
    monkeypatch.setattr(fast_generation, "run_rows", lambda *a, **kw: calls.append(1) or real(*a, **kw))

    fast = _job(ws)
    assert calls, "the default job did not run models.fast_generation"
    assert fast["params"]["engine"] == "fast"
    assert fast["params"]["precision"] == resolve_precision("auto", "cpu")       # stored resolved, not 'auto'

    calls.clear()
    ref = _job(ws, engine="reference", precision="fp32")
    assert not calls
    row = voices.list_generations(ws)[0]
    assert row["params"]["engine"] == "reference" and row["params"]["precision"] == "fp32"
    # the model core's own output for the same request
    core = G.generate(G.BarkStages.from_bark(load_bark("tiny")), load_text_tokenizer("tiny"),
                      [G.Request("Hello there.", None, 3)], G.Sampling(semantic_max_new_tokens=16))[0]
    assert np.array_equal(_audio(ref["files"][0]), core.audio)

    from workers.dispatch import submit

    bad = submit(ws, "generate", {"text": "Hi.", "model": "tiny", "engine": "turbo"}, wait=True)
    assert bad["status"] == "failed" and "engine 'turbo': use fast or reference" in bad["error"]


def test_fast_and_reference_jobs_give_the_same_greedy_fp32_audio(ws):
    import numpy as np

    greedy = {"semantic_temperature": 0, "coarse_temperature": 0, "fine_temperature": 0, "precision": "fp32"}
    fast = _audio(_job(ws, engine="fast", **greedy)["files"][0])
    ref = _audio(_job(ws, engine="reference", **greedy)["files"][0])
    # same codes decode to the same samples (the codec runs in fp32 in both)
    assert fast.shape == ref.shape and np.allclose(fast, ref, atol=1e-6)


def test_reuse_restores_engine_and_precision_and_old_rows_mean_reference_fp32(ws):
    from studio.inference import stored_inference as reuse_engine
    from studio.ui.generate_tab import generate_params

    assert reuse_engine({"semantic_temperature": 0.7}) == ("reference", "fp32")    # made before the fast engine
    assert reuse_engine({"engine": "fast", "precision": "bf16"}) == ("fast", "bf16")
    params = generate_params(ws, "Hi.", "tiny", None, [], {}, 0, 1)
    assert params["engine"] == "fast" and params["precision"] == "auto"
