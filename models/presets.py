"""Model presets: `tiny` (random-init, Bark-shaped, seeded), `small`, `large`, any hub id or folder.

`tiny` exercises every real code path with random weights in well under a second; it is
never a voice. Real presets load from the Hugging Face hub (or its local cache); offline, a
missing weight is one MissingWeightsError naming the model and `bark-studio models download`.
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import torch

from models import constants as C
from models.catalog import PRESETS, TINY, Preset, hub_cache, missing_line, preset_for  # noqa: F401 - facts live there
from models.catalog import looks_like_path as _looks_like_path
from models.errors import MissingWeightsError, ModelInputError

TINY_SEED = 1234


def resolve(name_or_path: str) -> str:
    """Preset name -> Bark model id; hub ids and folders pass through unchanged."""
    if not name_or_path or not str(name_or_path).strip():
        raise ModelInputError("model name is empty; use tiny, small, large, a hub id or a folder")
    name = str(name_or_path).strip()
    if name in PRESETS:
        return PRESETS[name].bark
    return name


def is_tiny(name_or_path: str) -> bool:
    return str(name_or_path).strip() == TINY


# --- tiny -----------------------------------------------------------------------------------

def tiny_bark_config():
    """A Bark-shaped config: real vocabularies and block sizes, a 2-layer, 64-wide body."""
    from transformers import BarkCoarseConfig, BarkConfig, BarkFineConfig, BarkSemanticConfig, EncodecConfig

    body = dict(num_layers=2, num_heads=2, hidden_size=64, block_size=1024, dropout=0.0, bias=False)
    semantic = BarkSemanticConfig(input_vocab_size=C.SEMANTIC_INPUT_VOCAB,
                                  output_vocab_size=C.SEMANTIC_OUTPUT_VOCAB, **body)
    coarse = BarkCoarseConfig(input_vocab_size=C.COARSE_VOCAB, output_vocab_size=C.COARSE_VOCAB, **body)
    fine = BarkFineConfig(input_vocab_size=C.FINE_VOCAB, output_vocab_size=C.FINE_VOCAB,
                          n_codes_total=C.N_FINE_CODEBOOKS, n_codes_given=1,
                          **{**body, "bias": True})
    codec = tiny_codec_config()
    return BarkConfig(semantic_config=semantic.to_dict(), coarse_acoustics_config=coarse.to_dict(),
                      fine_acoustics_config=fine.to_dict(), codec_config=codec.to_dict())


def tiny_codec_config():
    """EnCodec-shaped: 24 kHz, hop 320 (75 Hz), 8 codebooks of 1024 at 6 kbps, few filters."""
    from transformers import EncodecConfig

    return EncodecConfig(sampling_rate=C.SAMPLE_RATE, audio_channels=1, num_filters=4, hidden_size=32,
                         num_lstm_layers=1, upsampling_ratios=[8, 5, 4, 2], codebook_size=C.CODEBOOK_SIZE,
                         target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0])


def bark_generation_config():
    """transformers' Bark generation config with the reference constants (what suno ships)."""
    from transformers.models.bark.generation_configuration_bark import BarkGenerationConfig

    config = BarkGenerationConfig(
        semantic_config=dict(eos_token_id=C.SEMANTIC_EOS_TOKEN, max_new_tokens=C.SEMANTIC_MAX_NEW_TOKENS,
                             text_encoding_offset=C.TEXT_ENCODING_OFFSET, text_pad_token=C.TEXT_PAD_TOKEN,
                             semantic_infer_token=C.SEMANTIC_INFER_TOKEN,
                             semantic_vocab_size=C.SEMANTIC_VOCAB_SIZE,
                             max_input_semantic_length=C.MAX_INPUT_SEMANTIC_LENGTH,
                             semantic_rate_hz=C.SEMANTIC_RATE_HZ),
        coarse_acoustics_config=dict(coarse_semantic_pad_token=C.COARSE_SEMANTIC_PAD_TOKEN,
                                     coarse_rate_hz=C.COARSE_RATE_HZ, n_coarse_codebooks=C.N_COARSE_CODEBOOKS,
                                     coarse_infer_token=C.COARSE_INFER_TOKEN,
                                     max_coarse_input_length=C.MAX_COARSE_INPUT_LENGTH,
                                     max_coarse_history=C.MAX_COARSE_HISTORY,
                                     sliding_window_len=C.COARSE_SLIDING_WINDOW),
        fine_acoustics_config=dict(max_fine_history_length=C.MAX_FINE_HISTORY,
                                   max_fine_input_length=C.MAX_FINE_INPUT, n_fine_codebooks=C.N_FINE_CODEBOOKS),
        sample_rate=C.SAMPLE_RATE, codebook_size=C.CODEBOOK_SIZE)
    # BarkModel.generate re-builds each stage config with `**stage_config`: keep them as dicts,
    # as from_pretrained does.
    for key in ("semantic_config", "coarse_acoustics_config", "fine_acoustics_config"):
        setattr(config, key, getattr(config, key).to_dict())
    return config


@functools.lru_cache(maxsize=1)
def _tiny_template():
    """Build the tiny model once per process under a fixed seed (the global RNG is untouched)."""
    from transformers import BarkModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = BarkModel(tiny_bark_config())
        # transformers initialises EnCodec codebooks to zeros (every code would be 0). A random
        # encoder's output is a constant offset plus small changes over time, so layer 0's
        # codewords sit around the offset and every layer spreads at the scale of the changes.
        with torch.no_grad():
            offset = model.codec_model.encoder(torch.zeros(1, 1, 3200))[0].mean(dim=1)   # (D,)
            for depth, layer in enumerate(model.codec_model.quantizer.layers):
                embed = torch.randn_like(layer.codebook.embed) * 0.0015 * (0.7 ** depth)  # (1024, D)
                if depth == 0:
                    embed += offset
                layer.codebook.embed.copy_(embed)
                layer.codebook.embed_avg.copy_(embed)
    model.generation_config = bark_generation_config()
    return model.eval()


def build_tiny_bark():
    """A fresh tiny BarkModel, identical every time (a deep copy: safe to train or wrap)."""
    return copy.deepcopy(_tiny_template())


# --- loading --------------------------------------------------------------------------------

def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def require_local(name: str, parts: tuple[str, ...]) -> None:
    """Offline, a component that is not in the cache is one MissingWeightsError naming it and the
    download command, before any loader starts (online, from_pretrained fetches it)."""
    if _offline():
        line = missing_line(name, only=parts)
        if line:
            raise MissingWeightsError(resolve(name), name if name in PRESETS else None, message=line)


def load_bark(name_or_path: str = "tiny", device: str | torch.device = "cpu",
              dtype: torch.dtype | None = None):
    """A transformers BarkModel in eval mode: `tiny`, `small`, `large`, a hub id or a local folder."""
    name = str(name_or_path).strip()
    if is_tiny(name):
        model = build_tiny_bark()
    else:
        model = _from_pretrained("bark", name)
    model.eval()
    if dtype is not None:
        model.to(dtype=dtype)
    return model.to(device)


def _from_pretrained(kind: str, name: str):
    """Load a hub id or folder with one clear error when it is missing or unreadable."""
    from transformers import BarkModel

    model_id = resolve(name)
    preset = name if name in PRESETS else None
    if _looks_like_path(model_id):
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            raise ModelInputError(f"model folder {str(folder)!r} does not exist")
        if not (folder / "config.json").is_file():
            raise ModelInputError(f"model folder {str(folder)!r} has no config.json; not a Bark checkpoint")
        try:
            return BarkModel.from_pretrained(str(folder))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelInputError(f"cannot load Bark from {str(folder)!r}: {exc}".splitlines()[0]) from exc
    require_local(name, ("bark",))
    try:
        return BarkModel.from_pretrained(model_id, cache_dir=str(hub_cache()))
    except OSError as exc:
        if _offline() or _is_missing(exc):
            raise MissingWeightsError(model_id, preset, "" if _offline() else "not found") from exc
        raise ModelInputError(f"cannot load {model_id!r}: {exc}".splitlines()[0]) from exc


def _is_missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("offline", "couldn't connect", "not found", "does not appear to have",
                                   "cannot find", "connection"))


# --- text tokenizer ---------------------------------------------------------------------------

_TINY_WORDS = (
    "the a an and or but of to in on at for with from by is are was were be been it this that "
    "I you he she we they me my your his her our their what who how why when where yes no not "
    "hello hi hey there here good bad day night time today now then very so just like know "
    "think say said go going come see look make want need can will would could should have has "
    "had do does did one two three four five six seven eight nine ten world dog cat man woman "
    "voice speech sound music song laughs laughter sighs music gasps clears throat um uh well "
    "oh ah okay right really please thank thanks sorry love home work studio bark test"
).split()


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    """A deterministic WordPiece vocabulary: specials, characters, ##characters, common words."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, decoders
    from tokenizers.models import WordPiece

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)] + list("àâçéèêëîïôûùüÿñæœßäöü’‘“”…—–")
    vocab: dict[str, int] = {}
    for tok in specials + chars + ["##" + c for c in chars] + list(dict.fromkeys(_TINY_WORDS)):
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=False, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok.to_str()


def load_text_tokenizer(name_or_path: str = "tiny"):
    """Bark's text tokenizer (BERT multilingual cased for real models; a generated one for tiny)."""
    from transformers import BertTokenizerFast

    name = str(name_or_path).strip()
    if is_tiny(name):
        from tokenizers import Tokenizer

        return BertTokenizerFast(tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_json()),
                                 do_lower_case=False, unk_token="[UNK]", pad_token="[PAD]",
                                 cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    model_id = resolve(name)
    if _looks_like_path(model_id) and not Path(model_id).expanduser().is_dir():
        raise ModelInputError(f"model folder {model_id!r} does not exist")
    if not _looks_like_path(model_id):
        require_local(name, ("bark",))
    try:
        return BertTokenizerFast.from_pretrained(str(Path(model_id).expanduser())
                                                 if _looks_like_path(model_id) else model_id, cache_dir=str(hub_cache()))
    except OSError as exc:
        if _looks_like_path(model_id):
            raise ModelInputError(f"model folder {model_id!r} has no text tokenizer files "
                                  f"(vocab.txt / tokenizer.json)") from exc
        raise MissingWeightsError(model_id, name if name in PRESETS else None,
                                  "text tokenizer missing") from exc
