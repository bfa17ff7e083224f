"""The real loaders on the real-format `small` hub cache (tests/hub_fixture.py), offline: Bark,
its text tokenizer, HuBERT + quantizer, EnCodec, Whisper and the built-in voices load by the
names a user types, and the tokens have the real shapes and rates."""
import sys

import numpy as np
import pytest

from models import constants as C


def test_semantic_tokens_and_codes_have_the_real_rates(real_hub, awb_wav):
    from models.tokens import encode_codes, load_codec, load_semantic_tokenizer, read_audio

    semantic = load_semantic_tokenizer("small")
    assert semantic.model_id == ("facebook/hubert-base-ls960+GitMylo/bark-voice-cloning/"
                                 "quantifier_hubert_base_ls960_14.pth")
    assert semantic.hubert.config.hidden_size == C.HUBERT_DIM and semantic.quantizer.fc.out_features == 10_000
    wav16 = read_audio(awb_wav, C.HUBERT_SAMPLE_RATE)
    tokens = semantic(wav16)
    seconds = len(wav16) / C.HUBERT_SAMPLE_RATE
    assert tokens.ndim == 1 and 0 <= tokens.min() and tokens.max() < C.SEMANTIC_VOCAB_SIZE
    assert abs(len(tokens) / seconds - C.SEMANTIC_RATE_HZ) < 0.5        # 16 kHz / hop 320, minus one edge frame

    codec, codec_id = load_codec("small")
    assert codec_id == "facebook/encodec_24khz" and codec.config.codebook_size == 1024
    wav24 = read_audio(awb_wav, C.SAMPLE_RATE)
    codes = encode_codes(codec, wav24)
    assert codes.shape == (C.N_FINE_CODEBOOKS, round(len(wav24) / C.SAMPLE_RATE * C.CODEC_FRAME_RATE))
    assert 0 <= codes.min() and codes.max() < C.CODEBOOK_SIZE and len(np.unique(codes)) > 8


def test_bark_small_and_its_tokenizer_load_by_name(real_hub):
    from models.presets import load_bark, load_text_tokenizer

    bark = load_bark("small")
    sem = bark.semantic.config
    assert (sem.num_layers, sem.num_heads, sem.hidden_size, sem.input_vocab_size, sem.output_vocab_size) == \
        (12, 12, 768, C.SEMANTIC_INPUT_VOCAB, C.SEMANTIC_OUTPUT_VOCAB)
    assert bark.fine_acoustics.config.n_codes_total == C.N_FINE_CODEBOOKS
    assert 4.0e8 < sum(p.numel() for p in bark.parameters()) < 4.6e8
    tokenizer = load_text_tokenizer("small")
    ids = tokenizer("Hello world.").input_ids
    assert ids[0] == 101 and ids[-1] == 102 and len(tokenizer) == 119_547   # mBERT cased: [CLS] ... [SEP]


def test_real_whisper_sizes_load_by_path(real_hub, awb_wav):
    from models import asr

    model = asr.load_model("base")
    assert model.name == "base" and model.dims.n_text_layer == 6 and model.alignment_heads.is_sparse
    with pytest.raises(asr.ASRUnavailable, match="'tiny' is not downloaded.*test-random"):
        asr.load_model("tiny")                    # a real OpenAI size now, never the random model
    assert asr.load_model("test-random").dims.n_text_state == 64


def test_builtin_voices_are_listed_and_load(real_hub):
    from models import catalog, voice_prompt

    voices = catalog.builtin_voices("small")
    assert {f"v2/en_speaker_{i}" for i in range(10)} <= set(voices) and len(voices) == 261
    prompt = voice_prompt.builtin("v2/en_speaker_6")
    assert prompt.semantic.shape == (309,) and prompt.fine.shape == (8, 464)
    with pytest.raises(voice_prompt.ModelInputError, match="no built-in voice named 'v2/xx_speaker_1'"):
        voice_prompt.builtin("v2/xx_speaker_1")
    assert catalog.missing_line("small") is None


def test_a_builtin_voice_resolves_in_the_studio_without_torch(real_hub, ws, tmp_path):
    import subprocess

    code = ("import sys; from studio.workspace import Workspace; from studio import voices as V; "
            f"p = V.voice_path(Workspace.resolve({str(ws.root)!r}), 'v2/en_speaker_6'); "
            "print(p.name, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["v2__en_speaker_6.npz", "False"]
    from models import voice_prompt

    assert voice_prompt.load(ws.voices_dir / "builtin" / "v2__en_speaker_6.npz").fine.shape == (8, 464)
