"""The "generate" job (text -> WAVs under ws.generated_dir plus `generations` history rows) and
the "voice" job (a clip or a 5-12 s span -> a saved voice prompt)."""
from __future__ import annotations

from pathlib import Path

from models.files import write_wav
from studio import conditioning
from studio.errors import UserError
from studio.inference import DEFAULT_MODEL, inference_options
from studio.jobs import JobContext
from workers.handlers.tokens import user_errors

SAMPLING_KEYS = ("semantic_temperature", "coarse_temperature", "fine_temperature", "min_eos_p", "top_k", "top_p",
                 "semantic_max_new_tokens")


def resolve(precision: str, device) -> str:
    """'auto' -> bf16 on GPUs (fp16 on pre-Ampere ones) and on CPUs with bf16 instructions, else fp32."""
    from models.attention import resolve_precision

    try:
        return resolve_precision(precision, device)
    except ValueError as exc:  # e.g. fp16 on a CPU
        raise UserError(str(exc)) from None


def prepare_model(bark, engine: str, precision: str, device) -> str:
    """Put a loaded Bark (adapters already merged into its fp32 weights) in inference
    form: weights in `precision` ('auto' resolved for the device), SDPA attention for the fast
    engine; the reference engine keeps the attention it was loaded with. Returns the precision used."""
    from models.fast_generation import prepare_for_inference

    resolved = resolve(precision, device)
    prepare_for_inference(bark, resolved, "sdpa" if engine == "fast" else "eager", device)
    return resolved


class InferenceModels:
    """The model a job process generates with, cached per (model, adapters with their scales,
    precision, engine): a sweep's takes with one adapter load and merge it once.

    Adapters are merged into the weights (models.adapters.merge_adapters) on the fp32 weights as
    loaded, before the bf16/fp16 cast, so no PEFT layer stays in the forward path and generation
    with an adapter runs at the base model's speed. One entry is kept (a model is large): another
    key loads the base again, since a cast or a merge cannot be undone exactly.
    A label-conditioned adapter's vectors are not merged: they stay attached to the cached model
    (models.conditioning) and each request's speaker/labels are added at run time.
    Adapter paths may be relative to `root` (what the CLI stores for files inside the workspace)."""

    def __init__(self, device, root: Path | None = None):
        self.device, self.root = device, root
        self.key, self.bark, self.precision = None, None, None
        self.tokenizers: dict = {}

    def _path(self, path) -> str:
        p = Path(path)
        return str(p if p.is_absolute() or self.root is None else self.root / p)

    def get(self, model: str, adapters, precision: str, engine: str, phase=lambda name: None):
        """(bark, text tokenizer) ready for generation; `adapters` is [(path, scale), ...].
        `phase(name)` is told "loading model" and "merging adapter" as they start."""
        from models import adapters as A
        from models import presets

        adapters = tuple((self._path(p), float(s)) for p, s in adapters)
        key = (model, adapters, precision, engine)
        if key != self.key:
            self.key, self.bark = None, None  # the old copy goes before the new one loads
            phase("loading model")
            bark = presets.load_bark(model, device=self.device)
            if model not in self.tokenizers:
                self.tokenizers[model] = presets.load_text_tokenizer(model)
            if adapters:
                phase("merging adapter")
                A.merge_adapters(bark, list(adapters), base_model=model)
            self.precision = prepare_model(bark, engine, precision, self.device)
            self.key, self.bark = key, bark
        return self.bark, self.tokenizers[model]


def check_condition(bark, condition: dict | None) -> None:
    """An unknown speaker or label, a value out of range, or a condition for a model without
    conditioning: one line (ModelInputError), before any work."""
    if condition:
        from models.conditioning import attached, request_vectors

        request_vectors(attached(bark), [condition], ())


def generate_job(ctx: JobContext) -> dict:
    """params: texts (list) or text; model (default small); voice (name); adapters
    [{"name", "path", "scale"}]; seed (default 0); variants (seeds seed..seed+n-1 per text);
    any of SAMPLING_KEYS; batch_size; engine (fast | reference, default fast); precision
    (auto | bf16 | fp16 | fp32, default auto); device (default auto: the worker's GPU when there is
    one, else the CPU); speaker ({name: weight}, a mix) and labels ({name: value}) for an adapter
    trained with --condition. Resumable: outputs already written are kept.
    Each generation row stores the engine and the precision actually used."""
    from studio import voices as V

    ws = ctx.workspace
    p = ctx.params
    texts = p.get("texts") or ([p["text"]] if p.get("text") else [])
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise UserError("generate needs non-empty text")
    model = p.get("model") or DEFAULT_MODEL
    seed = int(p.get("seed") or 0)
    variants = int(p.get("variants") or 1)
    if variants < 1:
        raise UserError(f"variants must be at least 1, got {variants}")
    engine, precision = inference_options(p)
    adapters = list(p.get("adapters") or [])
    # label conditioning (an adapter trained with --condition): a speaker mix and label values
    condition = conditioning.condition(p)
    voice_name = p.get("voice") or None
    voice_file = V.voice_path(ws, voice_name) if voice_name else None
    folder = ws.generated_dir / f"job-{ctx.job_id}"
    wanted = [(i, t, seed + v) for i, t in enumerate(texts) for v in range(variants)]
    todo = [(k, w) for k, w in enumerate(wanted) if not (folder / f"{k:03d}.wav").is_file()]
    done_before = len(wanted) - len(todo)

    def phase(name: str) -> None:
        detail = {"loading model": f"loading model {model}",
                  "merging adapter": "merging adapter " + ", ".join(
                      f"{a.get('name') or Path(a['path']).name} x{float(a.get('scale', 1.0)):g}" for a in adapters)}
        ctx.progress(step=done_before, total=len(wanted), message=detail.get(name, name), phase=name)

    phase("loading model")
    from models import voice_prompt
    from models.attention import resolve_device
    from models.generation import BarkStages, Request, Sampling, generate

    with user_errors():
        sampling = Sampling(**{k: p[k] for k in SAMPLING_KEYS if p.get(k) is not None})
        voice = voice_prompt.load(voice_file) if voice_file else None
        device = resolve_device(p.get("device"))
        models = InferenceModels(device)
        bark, tokenizer = models.get(model, [(a["path"], float(a.get("scale", 1.0))) for a in adapters],
                                     precision, engine, phase)
        precision = models.precision
        check_condition(bark, condition)
    ctx.log(f"{model} on {device}: {precision} weights, {engine} engine")
    params = {**sampling.to_dict(), "variants": variants, "engine": engine, "precision": precision,
              **({"condition": condition} if condition else {})}
    batch = int(p.get("batch_size") or 4)
    rows = []
    ctx.progress(step=done_before, total=len(wanted), phase="generating",  # the model is ready: say so at once
                 message=f"generating {len(todo)} output{'s' if len(todo) != 1 else ''}")
    for start in range(0, len(todo), batch):
        ctx.check_cancelled()
        part = todo[start: start + batch]
        with user_errors():
            results = generate(BarkStages.from_bark(bark), tokenizer,
                               [Request(t, voice, s, condition) for _, (_, t, s) in part], sampling, batch_size=batch,
                               fast=engine == "fast")
        for (k, (_, text, s)), res in zip(part, results):
            path = folder / f"{k:03d}.wav"
            write_wav(path, res.audio, res.sample_rate, subtype="FLOAT")
            rows.append(V.record_generation(ws, text=text, model=model, voice=voice_name, adapters=adapters, seed=s,
                                            params=params, audio_path=path, duration=res.seconds, job_id=ctx.job_id))
        ctx.progress(step=len(wanted) - len(todo) + start + len(part), total=len(wanted), phase="generating",
                     message=f"generated {start + len(part)} of {len(todo)}")
    files = [str(folder / f"{k:03d}.wav") for k in range(len(wanted))]
    return {"files": files, "generations": [r["id"] for r in rows], "model": model, "voice": voice_name,
            "seed": seed, "params": params, "adapters": adapters}


def resolve_clip(ws, clip: str) -> tuple[Path, int | None, str]:
    """A dataset clip id (its stored original) or an audio file path -> (path, clip id, label)."""
    from studio.datasets.store import clip_file

    text = str(clip).strip()
    if text.isdigit():
        found = clip_file(ws.db, int(text))
        if found is None:
            raise UserError(f"no clip with id {text}")
        return ws.root / found[1], int(text), found[1]
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserError(f"{text}: no such audio file (or clip id)")
    return path.resolve(), None, str(path.resolve())


def _clip_name(ws, clip_id: int | None) -> str | None:
    from studio.datasets.store import clip_file

    found = clip_file(ws.db, clip_id) if clip_id is not None else None
    return found[0] if found is not None else None


def voice_job(ctx: JobContext) -> dict:
    """params: name, clip (path or clip id), start, end (seconds; default the whole clip, first 12 s),
    model (token models; default small)."""
    import soundfile as sf

    from studio import voices as V

    ws = ctx.workspace
    p = ctx.params
    name = V.check_name(p.get("name", ""))
    model = p.get("model") or DEFAULT_MODEL
    if V.voice_exists(ws, name):
        V.discard_staged(ws, p["clip"] if p.get("upload_name") else None)
        raise UserError(f"a voice named {name!r} already exists; delete it first or pick another name")
    if p.get("upload_name"):  # a browser upload, staged undecoded: decoded here, never in the web process
        try:
            path = V.take_upload(ws, p["clip"], p["upload_name"])
        finally:
            V.discard_staged(ws, p["clip"])
        clip_id, label, shown = None, ws.relative(path), p["upload_name"]
    else:
        path, clip_id, label = resolve_clip(ws, p.get("clip", ""))
        shown = p.get("label") or _clip_name(ws, clip_id) or path.name  # the user's name for it, not a storage hash
    try:
        duration = sf.info(str(path)).duration
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{shown}: cannot read audio ({exc})".splitlines()[0]) from exc
    from models import tokens as T
    from models import voice_prompt

    with user_errors():
        start, end = voice_prompt.check_span(duration, p.get("start"), p.get("end"), source=shown)
        ctx.progress(0.1, message="loading token models")
        semantic = T.load_semantic_tokenizer(model)
        codec, _ = T.load_codec(model)
        ctx.progress(0.5, message=f"tokenizing {shown} {start:.2f}-{end:.2f} s")
        sem, codes = T.tokenize_audio(path, semantic, codec, start, end)
        prompt = voice_prompt.from_tokens(sem, codes, source=shown)
    npz = prompt.save(V.voice_file(ws, name))
    try:
        row = V.record_voice(ws, name=name, npz=npz, model=model, source_path=label, source_clip_id=clip_id,
                             span=(start, end), semantic_len=len(prompt.semantic), frames=prompt.fine.shape[1],
                             job_id=ctx.job_id)
    except UserError:
        npz.unlink(missing_ok=True)
        raise
    ctx.progress(1.0, message=f"voice {name} saved")
    return row
