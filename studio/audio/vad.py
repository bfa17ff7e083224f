"""Speech regions with silero-vad (its weights ship inside the package; no download).

Silero reads 512-sample frames at 16 kHz and carries an LSTM state from frame to frame; run its way
(one model call per frame) a clip costs ~0.5 ms per 32 ms frame, nearly all of it per-call
overhead. But only the LSTM links frames: the STFT and conv encoder before it see one frame plus 64
samples of context, and the head after it one LSTM output. So all frames go through the encoder as
one batch, the LSTM runs over the whole sequence in one call (torch.nn.LSTM with the model's own
cell weights), and the head as one batch: the same network and numbers (to float rounding, ~1e-6),
about ten times faster."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from studio.audio.resample import VAD_RATE, resample

FRAME, CONTEXT = 512, 64  # silero at 16 kHz: samples per frame, and samples of the previous frame it also sees
BLOCK_FRAMES = 1024  # frames through the encoder at a time (~33 s of audio; bounds memory on long clips)


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    pad_ms: int = 30


@lru_cache(maxsize=1)
def _silero():
    """The silero_vad package, imported without its side effect: its import sets torch to one
    thread for the whole process (which would slow whatever runs after prepare in this process)."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


@lru_cache(maxsize=1)
def _model():
    """(silero's scripted model, its 16 kHz network, an nn.LSTM holding the network's LSTM cell);
    the last two are None if a silero release lays its network out differently (then frame by frame)."""
    import torch

    model = _silero().load_silero_vad(onnx=False)
    net = getattr(model, "_model", None)  # the 16 kHz network: stft -> encoder -> decoder (LSTMCell, 1x1 conv head)
    cell = getattr(getattr(net, "decoder", None), "rnn", None)
    if cell is None or not (hasattr(net, "stft") and hasattr(net, "encoder") and hasattr(net.decoder, "decoder")):
        return model, None, None
    lstm = torch.nn.LSTM(cell.weight_ih.shape[1], cell.weight_hh.shape[1])  # same gate order as LSTMCell
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").copy_(getattr(cell, name))
    return model, net, lstm.eval()


@contextmanager
def _one_thread():
    """Silero's ops are small: a second thread mostly waits (measured 13-95x slower for frame-by-frame
    calls on this 2-core machine while it was busy), so VAD runs on one thread and gives the process
    its setting back after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def speech_probs(audio16: np.ndarray) -> np.ndarray:
    """Silero's speech probability for each 512-sample frame of mono 16 kHz audio (the last frame
    zero-padded and the first frame's context zeros, as silero's get_speech_timestamps has them)."""
    import torch

    model, net, lstm = _model()
    if net is None:
        with torch.inference_mode(), _one_thread():
            return model.audio_forward(torch.from_numpy(audio16)[None], VAD_RATE)[0].numpy()
    n = -(-audio16.size // FRAME)
    padded = np.zeros(CONTEXT + n * FRAME, np.float32)
    padded[CONTEXT:CONTEXT + audio16.size] = audio16
    frames = torch.from_numpy(padded).unfold(0, CONTEXT + FRAME, FRAME)  # (n, 576) views: context + frame
    probs, state = [], None
    with torch.inference_mode(), _one_thread():
        for s in range(0, n, BLOCK_FRAMES):
            feats = net.encoder(net.stft(frames[s:s + BLOCK_FRAMES])).squeeze(-1)  # (b, 128)
            h, state = lstm(feats[:, None, :], state)  # as a sequence of b steps, batch 1: (b, 1, 128)
            probs.append(net.decoder.decoder(h.permute(0, 2, 1)).reshape(-1))  # 1x1 conv head: (b,)
    return torch.cat(probs).numpy()


def regions_from_probs(probs: np.ndarray, n_samples: int, settings: VadSettings = VadSettings()) -> list[tuple[float, float]]:
    """[(start_s, end_s)] by silero's own post-processing (thresholds, minimum lengths, padding)."""
    stamps = _silero().get_speech_timestamps_from_probs(
        probs.tolist(), sampling_rate=VAD_RATE, threshold=settings.threshold,
        min_speech_duration_ms=settings.min_speech_ms, min_silence_duration_ms=settings.min_silence_ms,
        speech_pad_ms=settings.pad_ms, audio_length_samples=n_samples)
    return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in stamps]


def speech_regions(audio: np.ndarray, sr: int, settings: VadSettings = VadSettings()) -> list[tuple[float, float]]:
    """[(start_s, end_s)] of speech in mono `audio`. Resamples to 16 kHz first (silero rejects 24 kHz)."""
    a16 = resample(audio, sr, VAD_RATE)
    return regions_from_probs(speech_probs(a16), a16.size, settings)
