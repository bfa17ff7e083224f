"""The "tag_probe" job: each declared tag of an adapter's dataset in fixed carrier sentences, with
and without the tag, with the adapter and with its base model, on the same seeds; every take is
written under generated/tag_probes/job-<id>/ (served by the studio's file route) and measured in
the tag's window (studio/experiments/tag_probe.py says how the window is placed)."""
from __future__ import annotations

from models.files import write_wav
from studio.errors import UserError
from studio.experiments import tag_probe as TP
from studio.inference import inference_options
from studio.jobs import JobContext
from workers.handlers.tokens import user_errors


def measure(audio, sample_rate: int, semantic, text: str, anchor: int, passes: int = 1) -> tuple[dict, str]:
    """(measures, alignment) of one take in its tag window: descriptors of the window's audio and
    the token measures of its semantic tokens. A take made in several passes (a long carrier) has
    gaps between them, so its tokens no longer map onto time: it is measured whole."""
    import numpy as np
    import soxr

    from models.metrics import descriptors

    start, end, alignment = TP.window(text, anchor, len(semantic)) if passes == 1 else \
        (0, len(semantic), TP.WHOLE_SPLIT)
    rate = TP.SEMANTIC_RATE_HZ
    a, b = (int(start / rate * sample_rate), int(end / rate * sample_rate)) if alignment == TP.PROPORTIONAL \
        else (0, len(audio))
    part = np.asarray(audio[a:b] if b > a else audio, dtype=np.float32)
    wave = soxr.resample(part, sample_rate, descriptors.SR, quality="HQ").astype(np.float32)
    if wave.size == 0:
        return {"take_s": len(audio) / sample_rate}, alignment
    desc = descriptors.describe(wave)
    found = {k: desc.get(k) for k in TP.MEASURES if k in desc}
    found.update(token_repetition=TP.token_repetition(semantic[start:end]), window_s=len(part) / sample_rate,
                 take_s=len(audio) / sample_rate)
    return found, alignment


def tag_probe_job(ctx: JobContext) -> dict:
    """params (studio.experiments.tag_probe.probe_request makes them): adapter, adapter_path,
    model, dataset, tags, seeds, carriers, max_new_semantic; engine, precision, device optional.
    Resumable: takes already written are measured again, not generated again."""
    import numpy as np

    ws, p = ctx.workspace, ctx.params
    takes = TP.plan(p["tags"], p["seeds"], p.get("carriers") or TP.CARRIERS)
    engine, precision = inference_options(p)
    folder = ws.generated_dir / "tag_probes" / f"job-{ctx.job_id}"
    ctx.log(f"tag probe of {p['adapter']}: {len(p['tags'])} tags, {len(takes)} takes")

    from models.attention import resolve_device
    from models.generation import BarkStages, Request, Sampling, generate
    from workers.handlers.generate import InferenceModels

    with user_errors():
        device = resolve_device(p.get("device"))
        sampling = Sampling(**({"semantic_max_new_tokens": int(p["max_new_semantic"])}
                               if p.get("max_new_semantic") else {}))
    models = InferenceModels(device, ws.root)
    records, done = [], 0
    for arm in TP.ARMS:  # the base first, then the adapter: the model loads twice, not per take
        adapters = [(p["adapter_path"], 1.0)] if arm == "adapter" else []
        mine = [t for t in takes if t.arm == arm]
        ctx.progress(step=done, total=len(takes), message=f"loading {p['model']} ({arm})")
        with user_errors():
            bark, tokenizer = models.get(p["model"], adapters, precision, engine)
        for start in range(0, len(mine), 8):
            ctx.check_cancelled()
            part = mine[start:start + 8]
            ctx.progress(step=done, total=len(takes), message=f"generating {arm} takes")
            with user_errors():
                results = generate(BarkStages.from_bark(bark), tokenizer, [Request(t.text, None, t.seed) for t in part],
                                   sampling, batch_size=8, fast=engine == "fast")
            for take, res in zip(part, results):
                path = folder / f"{take.key}.wav"
                write_wav(path, res.audio, res.sample_rate, subtype="FLOAT")
                semantic = np.concatenate(res.semantic) if res.semantic else np.zeros(0, int)
                measures, alignment = measure(res.audio, res.sample_rate, semantic.tolist(), take.text, take.anchor,
                                              len(res.semantic))
                records.append(TP.take_record(take, audio_path=ws.relative(path), measures=measures,
                                              alignment=alignment, semantic_tokens=int(len(semantic))))
                done += 1
    if not records:
        raise UserError("the probe made no takes")
    result = {"adapter": p["adapter"], "model": p["model"], "dataset": p.get("dataset"), "tags": p["tags"],
              "seeds": p["seeds"], "carriers": p.get("carriers") or list(TP.CARRIERS),
              "alignments": sorted({r["alignment"] for r in records}), "takes": records,
              "table": TP.table(records)}
    ctx.log(f"tag probe of {p['adapter']}: {len(records)} takes measured")
    return result
