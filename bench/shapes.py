"""Random-weight Bark models with the real vocabularies and the published layer shapes.

The bench never downloads: what it measures depends on shapes, not on trained weights, so
`bark-small` here is 12 layers x 12 heads x 768 with the real vocab sizes, `bark` is
24 x 16 x 1024, and `tiny` is a 2-layer model for smoke runs.
"""

from __future__ import annotations

import torch
from transformers import BarkCoarseConfig, BarkConfig, BarkFineConfig, BarkModel, BarkSemanticConfig, EncodecConfig

# layers, heads, hidden
SHAPES = {
    "tiny": (2, 2, 64),
    "bark-small": (12, 12, 768),
    "bark": (24, 16, 1024),
}


def stage_configs(shape: str, dropout: float = 0.0) -> dict:
    """Sub-model configs for `shape` with Bark's real vocabularies and block size."""
    if shape not in SHAPES:
        raise ValueError(f"unknown bench shape {shape!r}; choose from {sorted(SHAPES)}")
    layers, heads, hidden = SHAPES[shape]
    common = dict(num_layers=layers, num_heads=heads, hidden_size=hidden, block_size=1024, dropout=dropout)
    return {
        "semantic": BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, bias=False, **common),
        "coarse": BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, bias=False, **common),
        "fine": BarkFineConfig(input_vocab_size=1_056, output_vocab_size=1_056, bias=True, n_codes_total=8,
                               n_codes_given=1, **common),
    }


def tiny_codec_config() -> EncodecConfig:
    """EnCodec 24 kHz layout (8 codebooks at 6 kbps, 75 Hz) with narrow convolutions."""
    from models.presets import tiny_codec_config as codec

    return codec()


def bark_model(shape: str, seed: int = 0, full_codec: bool = False) -> BarkModel:
    """A whole random BarkModel shaped like `shape`, in eval mode, with the generation defaults
    of suno's checkpoints (transformers' BarkModel() carries them in its generation_config)."""
    torch.manual_seed(seed)
    c = stage_configs(shape)
    config = BarkConfig(
        semantic_config=c["semantic"].to_dict(),
        coarse_acoustics_config=c["coarse"].to_dict(),
        fine_acoustics_config=c["fine"].to_dict(),
        codec_config=(EncodecConfig() if full_codec else tiny_codec_config()).to_dict(),
    )
    model = BarkModel(config).eval()
    model.generation_config = generation_config()
    return model


def generation_config():
    """suno's generation settings, stage configs kept as dicts the way from_pretrained leaves them."""
    from models.presets import bark_generation_config

    return bark_generation_config()


def semantic_stage(shape: str, seed: int = 0, dropout: float = 0.0):
    """Only the semantic (text -> semantic tokens) stage: what training benches use."""
    from transformers import BarkSemanticModel

    torch.manual_seed(seed)
    return BarkSemanticModel(stage_configs(shape, dropout)["semantic"])


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def text_inputs(batch: int, n_tokens: int, seed: int = 0) -> dict:
    """What BarkProcessor returns for `batch` texts of `n_tokens` BERT tokens: ids padded to the
    256 text positions, with the attention mask that makes generate fill them with the text pad."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(batch, 256, dtype=torch.long)
    ids[:, :n_tokens] = torch.randint(1_000, 30_000, (batch, n_tokens), generator=g)
    mask = torch.zeros(batch, 256, dtype=torch.long)
    mask[:, :n_tokens] = 1
    return {"input_ids": ids, "attention_mask": mask}
