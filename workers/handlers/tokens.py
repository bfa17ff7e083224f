"""The "tokenize" job: per prepared segment of a dataset, semantic tokens and 8 x T EnCodec codes,
cached under ws.tokens_dir by clip hash and token-model ids. Resumable: cached clips are skipped.

Also the glue the trainer uses: `token_items(ws, dataset, model)` -> models.layouts.TokenItem list."""
from __future__ import annotations

import contextlib
from pathlib import Path

from studio.errors import UserError
from studio.inference import DEFAULT_MODEL
from studio.jobs import JobContext


@contextlib.contextmanager
def user_errors():
    """models/ raises ModelInputError (bad input, missing weights): show it as one line."""
    from models.errors import ModelInputError

    try:
        yield
    except ModelInputError as exc:
        raise UserError(str(exc)) from exc


def token_model_ids(model: str) -> str:
    """The ids that make a token cache entry: semantic tokenizer + codec for this model."""
    from models.presets import is_tiny, preset_for

    if is_tiny(model):
        return "tiny-hubert+tiny-quantizer|tiny-codec"
    p = preset_for(model)
    return f"{p.hubert}+{p.quantizer_repo}/{p.quantizer_file}|{p.codec}"


def token_path(ws, sha256: str, model: str) -> Path:
    from models.tokens import cache_key

    return ws.tokens_dir / f"{cache_key(sha256, token_model_ids(model))}.npz"


def tokenize_job(ctx: JobContext) -> dict:
    """params: dataset (name), model (small | large | hub id | tiny; default small)."""
    from studio.datasets.api import training_items

    ws = ctx.workspace
    dataset = ctx.params.get("dataset")
    model = ctx.params.get("model") or DEFAULT_MODEL
    if not dataset:
        raise UserError("tokenize needs a dataset name")
    items = training_items(ws, dataset)
    if not items:
        raise UserError(f"dataset {dataset!r} has no kept segments with text to tokenize")
    todo = [it for it in items if not token_path(ws, it["sha256"], model).is_file()]
    ctx.log(f"{len(items)} segments, {len(items) - len(todo)} already tokenized for {model}")
    done = len(items) - len(todo)
    ctx.progress(step=done, total=len(items), message="loading token models" if todo else "all cached")
    failed = []
    if todo:
        from models import tokens as T

        with user_errors():
            semantic = T.load_semantic_tokenizer(model)
            codec, _ = T.load_codec(model)
        for it in todo:
            ctx.check_cancelled()
            name = Path(it["path"]).name
            try:
                with user_errors():
                    sem, codes = T.tokenize_audio(it["path"], semantic, codec)
            except UserError as exc:  # one bad file does not stop the rest
                failed.append({"path": it["path"], "error": str(exc)})
                ctx.log(f"skipped {name}: {exc}")
                continue
            T.save_tokens(token_path(ws, it["sha256"], model), sem, codes,
                          {"sha256": it["sha256"], "model": model, "ids": token_model_ids(model)})
            done += 1
            ctx.progress(step=done, total=len(items), message=f"tokenized {name}")
    return {"dataset": dataset, "model": model, "items": len(items), "tokenized": len(todo) - len(failed),
            "cached": len(items) - len(todo), "failed": failed, "tokens_dir": str(ws.tokens_dir)}


def token_items(ws, dataset: str, model: str = DEFAULT_MODEL, items: list[dict] | None = None) -> list:
    """TokenItems for every tokenized segment of `dataset` (the trainer's input). Raises when a
    segment has not been tokenized yet (run the tokenize job first)."""
    from models.layouts import TokenItem
    from models.presets import load_text_tokenizer
    from models.text import encode_text
    from models.tokens import load_tokens
    from studio.datasets.api import training_items

    items = items if items is not None else training_items(ws, dataset)
    with user_errors():
        tok = load_text_tokenizer(model)
        out, missing = [], 0
        for it in items:
            path = token_path(ws, it["sha256"], model)
            if not path.is_file():
                missing += 1
                continue
            sem, codes = load_tokens(path)
            try:
                ids = encode_text(tok, it["text"])
            except Exception as exc:  # noqa: BLE001 - name the segment
                raise UserError(f"{Path(it['path']).name}: {exc}") from exc
            out.append(TokenItem(text_ids=ids, semantic=sem, codes=codes, key=Path(it["path"]).name))
    if missing:
        raise UserError(f"{missing} of {len(items)} segments of {dataset!r} are not tokenized for {model}; "
                        f"run the tokenize job first")
    return out
