"""A Hugging Face hub cache for the `small` preset whose files are what the hub serves in name,
format and shape, with seeded random weights (the real ones cannot be downloaded here).

    env = hub_env()        # builds once (~/.cache/bark-studio-tests/hub-<VERSION>), returns the env to set
    python -m tests.hub_fixture [DIR]   # build by hand; prints the env

Layout, as huggingface_hub writes it: `<cache>/models--org--name/{refs/main, blobs/<sha256>,
snapshots/<rev>/<file> -> ../../blobs/<sha256>}`. Whisper's checkpoint sits in openai-whisper's
download root as `base.pt` ({"dims", "model_state_dict"} in fp16, like openai's files).

What each file copies from the real one:
- suno/bark-small: config.json (bias-free semantic/coarse, biased fine, 12 layers x 12 heads x 768,
  vocabularies 129600/10048, 12096, 1056; EnCodec 24 kHz codec_config), generation_config.json
  (Bark's constants), pytorch_model.bin (a pickled state dict, fp32, with the causal-mask
  `attn.bias` bool buffers older transformers saved), BERT-style tokenizer files (vocab.txt with
  mBERT's size and special-token ids, tokenizer.json, tokenizer_config.json,
  special_tokens_map.json), speaker_embeddings_path.json listing every language's v1 and v2
  speakers and the announcer, and their `.npy` prompts (en_speaker_6: semantic 309,
  coarse/fine 464 frames).
- facebook/hubert-base-ls960: config.json, pytorch_model.bin (95M parameters).
- GitMylo/bark-voice-cloning: quantifier_hubert_base_ls960_14.pth, a torch state dict (`lstm.*`
  2 layers 768->1024, `fc` 1024->10000) with gitmylo's `.info` JSON added to the zip.
- facebook/encodec_24khz: config.json, model.safetensors, preprocessor_config.json.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

VERSION = 4          # bump when a file's content changes: the cache is rebuilt
SEED = 0
REVISIONS = {        # any 40-hex commit ids: the cache layout needs one per repo
    "suno/bark-small": "1dbd7a1faf4bd1a0ef9c3fa1f5de0ec5d1f6b9a1",
    "facebook/hubert-base-ls960": "dba3bb02fda4248b6e082697eee756de8fe8aa8a",
    "GitMylo/bark-voice-cloning": "5ad4b1fa8b4b8d2a9d0d4e3c1f0a9b8c7d6e5f40",
    "facebook/encodec_24khz": "c1dbe2ae3f1de713481a3b3e7c47f357092ee040",
}
LANGUAGES = ("de", "en", "es", "fr", "hi", "it", "ja", "ko", "pl", "pt", "ru", "tr", "zh")
WHISPER_SIZE = "base"
WHISPER_BASE_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8, n_audio_layer=6,
                         n_vocab=51865, n_text_ctx=448, n_text_state=512, n_text_head=8, n_text_layer=6)
MBERT_VOCAB_SIZE = 119_547   # bert-base-multilingual-cased, which Bark's text tokenizer is


def default_root() -> Path:
    base = os.environ.get("BARK_STUDIO_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                     "bark-studio-tests")
    return Path(base) / f"hub-{VERSION}"


def env_for(root: Path) -> dict[str, str]:
    """The environment that points every loader at the fixture, offline."""
    return {"HF_HOME": str(root / "hf"), "HF_HUB_CACHE": str(root / "hf" / "hub"),
            "BARK_STUDIO_WHISPER_ROOT": str(root / "whisper"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def hub_env(root: Path | None = None) -> dict[str, str]:
    """Build the fixture once (in a subprocess, under a file lock) and return its env."""
    root = Path(root or default_root())
    if not (root / "DONE").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        with open(root.parent / f"hub-{VERSION}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)   # another session may be building the same folder
            if not (root / "DONE").is_file():
                subprocess.run([sys.executable, "-m", "tests.hub_fixture", str(root)], check=True,
                               cwd=Path(__file__).resolve().parent.parent)
    return env_for(root)


# --- the hub cache layout ---------------------------------------------------------------------

class Repo:
    """One `models--org--name` folder: files go to blobs/<sha256>, linked from the snapshot."""

    def __init__(self, cache: Path, repo_id: str):
        self.folder = cache / ("models--" + repo_id.replace("/", "--"))
        self.revision = REVISIONS[repo_id]
        self.snapshot = self.folder / "snapshots" / self.revision
        (self.folder / "blobs").mkdir(parents=True, exist_ok=True)
        (self.folder / "refs").mkdir(parents=True, exist_ok=True)
        (self.folder / "refs" / "main").write_text(self.revision)

    def add(self, name: str, write) -> Path:
        """`write(path)` makes the file; it is moved into blobs and linked as `name`."""
        # Written under its own base name: torch.save names the zip's inner folder after the file.
        tmp = self.folder / "blobs" / ".incoming" / Path(name).name
        tmp.parent.mkdir(exist_ok=True)
        write(tmp)
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        blob = self.folder / "blobs" / digest.hexdigest()
        os.replace(tmp, blob)
        tmp.parent.rmdir()
        link = self.snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        return link

    def add_json(self, name: str, data: dict) -> Path:
        return self.add(name, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


# --- builders ------------------------------------------------------------------------------------

def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def codec_config():
    """facebook/encodec_24khz's config: transformers' EncodecConfig defaults are that model."""
    from transformers import EncodecConfig

    config = EncodecConfig()
    assert (config.sampling_rate, config.codebook_size, list(config.upsampling_ratios), config.num_filters) == \
        (24_000, 1024, [8, 5, 4, 2], 32)
    config.architectures = ["EncodecModel"]
    return config


def build_codec():
    import torch
    from transformers import EncodecModel

    _seeded(SEED + 3)
    codec = EncodecModel(codec_config()).eval()
    # transformers starts codebooks at zero (every code would be 0): spread them like a trained
    # codec, layer 0 around the encoder's output level, later layers at the residual's scale.
    with torch.no_grad():
        level = codec.encoder(torch.zeros(1, 1, 3200))[0].mean(dim=1)        # (128,)
        spread = codec.encoder(torch.randn(1, 1, 24_000) * 0.1)[0].std()
        for depth, layer in enumerate(codec.quantizer.layers):
            embed = torch.randn_like(layer.codebook.embed) * spread * (0.7 ** depth)
            if depth == 0:
                embed += level
            layer.codebook.embed.copy_(embed)
            layer.codebook.embed_avg.copy_(embed)
            layer.codebook.cluster_size.fill_(1.0)
    return codec


def bark_config():
    """suno/bark-small's config.json (sub-model sizes from the hub file)."""
    from transformers import BarkCoarseConfig, BarkConfig, BarkFineConfig, BarkSemanticConfig

    body = dict(num_layers=12, num_heads=12, hidden_size=768, block_size=1024, dropout=0.0)
    semantic = BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, bias=False, **body)
    coarse = BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, bias=False, **body)
    fine = BarkFineConfig(input_vocab_size=1056, output_vocab_size=1056, bias=True, n_codes_total=8,
                          n_codes_given=1, **body)
    config = BarkConfig(semantic_config=semantic.to_dict(), coarse_acoustics_config=coarse.to_dict(),
                        fine_acoustics_config=fine.to_dict(), codec_config=codec_config().to_dict())
    config.architectures = ["BarkModel"]
    return config


def build_bark(repo: Repo, codec) -> int:
    import torch
    from transformers import BarkModel

    from models.presets import bark_generation_config

    _seeded(SEED)
    model = BarkModel(bark_config()).eval()
    model.codec_model.load_state_dict(codec.state_dict())    # Bark ships EnCodec 24 kHz's own weights
    state = dict(model.state_dict())
    # The released pickle also carries older transformers' causal-mask buffers (its BoolStorage).
    mask = torch.tril(torch.ones(1024, 1024, dtype=torch.bool)).view(1, 1, 1024, 1024)
    for stage in ("semantic", "coarse_acoustics"):
        for i in range(12):
            state[f"{stage}.layers.{i}.attn.bias"] = mask
    repo.add_json("config.json", model.config.to_dict())
    gen = bark_generation_config()   # its stage configs are already dicts, as from_pretrained keeps them
    repo.add_json("generation_config.json", {
        "semantic_config": gen.semantic_config, "coarse_acoustics_config": gen.coarse_acoustics_config,
        "fine_acoustics_config": gen.fine_acoustics_config, "sample_rate": gen.sample_rate,
        "codebook_size": gen.codebook_size, "transformers_version": "4.31.0.dev0"})
    repo.add("pytorch_model.bin", lambda p: torch.save(state, p))
    return sum(v.numel() for k, v in model.state_dict().items())


def build_tokenizer(repo: Repo) -> None:
    """BERT multilingual cased's file set and special-token ids; the word pieces are synthetic."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    from models.presets import _TINY_WORDS

    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)] + list("àâçéèêëîïôûùüÿñæœßäöü’‘“”…—–")
    for tok in chars + ["##" + c for c in chars] + list(dict.fromkeys(_TINY_WORDS)):
        if tok not in tokens:
            tokens.append(tok)
    tokens += [f"##{i:05d}x" for i in range(MBERT_VOCAB_SIZE - len(tokens))]
    assert len(tokens) == MBERT_VOCAB_SIZE and tokens.index("[CLS]") == 101
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 101), ("[SEP]", 102)])
    tok.decoder = decoders.WordPiece(prefix="##")
    repo.add("vocab.txt", lambda p: p.write_text("\n".join(tokens) + "\n", encoding="utf-8"))
    repo.add("tokenizer.json", lambda p: tok.save(str(p)))
    specials = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]",
                "unk_token": "[UNK]"}
    repo.add_json("special_tokens_map.json", specials)
    repo.add_json("tokenizer_config.json", {**specials, "clean_up_tokenization_spaces": True, "do_lower_case": False,
                                            "model_max_length": 512, "strip_accents": None,
                                            "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer"})


def build_voices(repo: Repo) -> int:
    """speaker_embeddings_path.json + one .npy per prompt part, for every built-in speaker."""
    import numpy as np

    rng = np.random.default_rng(SEED + 5)
    names = ["announcer"] + [f"{lang}_speaker_{i}" for lang in LANGUAGES for i in range(10)]
    names += [f"v2/{lang}_speaker_{i}" for lang in LANGUAGES for i in range(10)]
    index: dict = {"repo_or_path": "ylacombe/bark-small"}
    for name in names:
        n_sem = 309 if name == "v2/en_speaker_6" else int(rng.integers(200, 420))
        frames = 464 if name == "v2/en_speaker_6" else int(round(n_sem * 75 / 49.9))
        fine = rng.integers(0, 1024, size=(8, frames), dtype=np.int64)
        arrays = {"semantic_prompt": rng.integers(0, 10_000, size=n_sem, dtype=np.int64),
                  "coarse_prompt": fine[:2].copy(), "fine_prompt": fine}
        entry = {}
        for part, arr in arrays.items():
            rel = f"speaker_embeddings/{name}_{part}.npy"
            repo.add(rel, lambda p, a=arr: np.save(open(p, "wb"), a, allow_pickle=False))
            entry[part] = rel
        index[name] = entry
    repo.add_json("speaker_embeddings_path.json", index)
    return len(names)


def build_hubert(repo: Repo) -> int:
    import torch
    from transformers import HubertConfig, HubertModel

    config = HubertConfig()      # transformers' defaults are hubert-base-ls960's architecture
    assert (config.hidden_size, config.num_hidden_layers, config.feat_extract_norm, config.conv_bias) == \
        (768, 12, "group", False)
    config.architectures = ["HubertModel"]
    _seeded(SEED + 1)
    model = HubertModel(config).eval()
    repo.add_json("config.json", config.to_dict())
    repo.add_json("preprocessor_config.json", {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                                               "feature_size": 1, "padding_side": "right", "padding_value": 0,
                                               "return_attention_mask": False, "sampling_rate": 16000})
    repo.add("pytorch_model.bin", lambda p: torch.save(model.state_dict(), p))
    return sum(p.numel() for p in model.parameters())


def build_quantizer(repo: Repo, filename: str) -> int:
    """gitmylo's CustomTokenizer v0: lstm (768 -> 1024, 2 layers) and fc (1024 -> 10000); its save()
    writes the state dict, then appends `<stem>/.info` (the sizes and version, JSON) to the zip."""
    import zipfile

    import torch

    from models.tokens import Quantizer

    _seeded(SEED + 2)
    model = Quantizer()
    state = model.state_dict()
    assert sorted(state) == sorted([f"lstm.{w}_{k}_l{i}" for w in ("weight", "bias") for k in ("ih", "hh")
                                    for i in (0, 1)] + ["fc.weight", "fc.bias"])

    def write(path: Path) -> None:
        torch.save(state, path)
        info = {"input_size": 768, "hidden_size": 1024, "output_size": 10_000, "version": 0}
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(f"{Path(filename).stem}/.info", json.dumps(info))

    repo.add(filename, write)
    return sum(v.numel() for v in state.values())


def build_whisper(root: Path) -> int:
    """openai-whisper's checkpoint format: torch.save({"dims": dims dict, "model_state_dict": fp16})."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    _seeded(SEED + 4)
    model = Whisper(ModelDimensions(**WHISPER_BASE_DIMS))
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)   # torch.empty in Whisper
    state = {k: v.half() for k, v in model.state_dict().items()}
    root.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dict(WHISPER_BASE_DIMS), "model_state_dict": state}, root / f"{WHISPER_SIZE}.pt")
    return sum(p.numel() for p in model.parameters())


def build(root: Path) -> dict:
    """Build everything into `root` (atomically: a half-built folder never looks finished)."""
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    started = time.monotonic()
    work = root.with_name(root.name + f".building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        report = _build_into(work, started)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)   # a failed build leaves nothing behind
        raise
    shutil.rmtree(root, ignore_errors=True)
    os.replace(work, root)
    return report


def _build_into(work: Path, started: float) -> dict:
    from models.catalog import PRESETS

    preset = PRESETS["small"]
    cache = work / "hf" / "hub"
    codec = build_codec()
    codec_repo = Repo(cache, preset.codec)
    from safetensors.torch import save_file

    codec_repo.add_json("config.json", codec.config.to_dict())
    codec_repo.add_json("preprocessor_config.json", {"chunk_length_s": None, "feature_extractor_type": "EncodecFeatureExtractor",
                                                     "feature_size": 1, "overlap": None, "padding_side": "right",
                                                     "padding_value": 0.0, "return_attention_mask": True,
                                                     "sampling_rate": 24000})
    codec_repo.add("model.safetensors", lambda p: save_file({k: v.contiguous() for k, v in codec.state_dict().items()},
                                                             str(p), metadata={"format": "pt"}))
    bark_repo = Repo(cache, preset.bark)
    counts = {"bark": build_bark(bark_repo, codec)}
    build_tokenizer(bark_repo)
    counts["voices"] = build_voices(bark_repo)
    counts["hubert"] = build_hubert(Repo(cache, preset.hubert))
    counts["quantizer"] = build_quantizer(Repo(cache, preset.quantizer_repo), preset.quantizer_file)
    counts["whisper"] = build_whisper(work / "whisper")
    size = sum(f.stat().st_size for f in work.rglob("*") if f.is_file() and not f.is_symlink())
    report = {"version": VERSION, "seconds": round(time.monotonic() - started, 1), "bytes": size, "params": counts}
    (work / "DONE").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_root()
    print(json.dumps(build(target), indent=2))
    print(json.dumps(env_for(target), indent=2))
