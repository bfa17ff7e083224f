"""The audio functions curation stands on: decoding every format, validation, resampling,
loudness, VAD, segmentation, SNR and clipping, on real and generated speech."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from studio.audio import loudness, vad
from studio.audio.decode import AudioError, decode_file
from studio.audio.quality import clipping, speech_only, wada_snr
from studio.audio.resample import resample, to_mono
from studio.audio.segment import Unit, plan_segments, speech_units
from studio.audio.vad import speech_regions
from tests.curation_audio import long_speech, make_bad, make_formats


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("curation-audio")
    formats = make_formats(root / "formats")
    return {"formats": formats, "bad": make_bad(root / "bad", formats["wav"]), "long": long_speech(root)}


def test_every_format_rate_and_channel_count_decodes(made):
    expect = {"wav": (22050, 1, "WAV"), "flac": (44100, 2, "FLAC"), "ogg": (48000, 1, "OGG"),
              "mp3": (16000, 2, "MP3"), "wav8k": (8000, 1, "WAV")}
    durations = []
    for key, (rate, channels, fmt) in expect.items():
        d = decode_file(made["formats"][key])
        assert (d.sample_rate, d.channels, d.format) == (rate, channels, fmt), key
        assert d.audio.dtype == np.float32 and np.abs(d.audio).max() <= 1.0
        durations.append(d.duration)
    assert max(durations) - min(durations) < 0.1  # the same sentence in every container (mp3 pads a little)


@pytest.mark.parametrize("kind, reason", [
    ("empty", "empty (0 bytes)"), ("corrupt", "audio"), ("not_audio", "not an audio file"),
    ("silent", "silent"), ("short", "shorter than the 0.4 s minimum")])
def test_bad_files_get_a_reason_naming_the_file(made, kind, reason):
    path = made["bad"][kind]
    with pytest.raises(AudioError) as info:
        decode_file(path)
    message = str(info.value)
    assert message.startswith(path.name + ":") and reason in message and "\n" not in message


def test_size_limit_is_checked_before_decoding(made):
    path = made["formats"]["wav"]
    with pytest.raises(AudioError, match="over the 0 MB limit"):
        decode_file(path, max_bytes=path.stat().st_size - 1)
    assert decode_file(path, max_bytes=path.stat().st_size).duration > 1


def test_resample_to_24k_mono_with_soxr(awb_wav):
    audio, sr = sf.read(awb_wav, dtype="float32")
    out = resample(to_mono(np.stack([audio, audio], axis=1)), sr, 24_000)
    assert out.ndim == 1 and abs(out.size - audio.size * 24_000 / sr) <= 2
    # a 1 kHz tone keeps its frequency
    t = np.arange(16_000) / 16_000
    tone = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 16_000, 24_000)
    peak_bin = np.argmax(np.abs(np.fft.rfft(tone))) * 24_000 / tone.size
    assert abs(peak_bin - 1000) < 2


@pytest.mark.parametrize("target", [-20.0, -23.0, -16.0])
def test_loudness_lands_within_a_hundredth_lu_with_peaks_under_the_ceiling(made, slt_wav, target):
    import pyloudnorm

    limited = []
    for path in (slt_wav, made["formats"]["wav"], made["long"]):  # espeak's peaks need the limiter
        d = decode_file(path)
        mono = d.mono()
        out, facts = loudness.normalize(mono, d.sample_rate, target, -1.0)
        reference = pyloudnorm.Meter(d.sample_rate).integrated_loudness(out.astype(np.float64))
        assert abs(reference - target) < 0.01, (path, facts)
        assert facts["output_lufs"] == pytest.approx(reference, abs=1e-3)  # what prepare records
        assert loudness.peak_dbfs(out) <= -1.0 + 1e-3
        # the limiter works exactly when a plain gain to the target would pass the ceiling
        input_lufs = loudness.measure_lufs(mono, d.sample_rate)  # equal to pyloudnorm (test below)
        plain_peak = loudness.peak_dbfs(mono) + target - input_lufs
        assert facts["peak_limited"] == (plain_peak > -1.0), (path, plain_peak, facts)
        limited.append(facts["peak_limited"])
    if target == -16.0:  # loud enough that speech peaks pass the ceiling: the limiter's path is run
        assert any(limited)


def test_loudness_meter_equals_pyloudnorm_on_real_speech(made, awb_wav, slt_wav):
    """The vectorised BS.1770 meter (FFT K-weighting, cumulative-sum blocks) reads what pyloudnorm
    reads: at every common rate, on quiet audio and on lengths that end inside a gating block."""
    import pyloudnorm

    for path in (awb_wav, slt_wav, made["long"]):
        d = decode_file(path)
        for sr in (8000, 16000, 22050, 24000, 44100, 48000):
            x = resample(d.mono(), d.sample_rate, sr)
            for cut in (x, x[: int(0.45 * sr)], x[: int(1.09 * sr)] * 0.01):
                ref = pyloudnorm.Meter(sr).integrated_loudness(cut.astype(np.float64))
                assert loudness.measure_lufs(cut, sr) == pytest.approx(ref, abs=1e-3), (path.name, sr, cut.size)
    assert loudness.measure_lufs(np.zeros(24_000, np.float32), 24_000) == -math.inf
    assert loudness.measure_lufs(np.ones(9_000, np.float32), 24_000) == -math.inf  # under one 400 ms block


def test_limiter_filters_equal_scipys(slt_wav):
    """The limiter's numpy running min / mean are scipy.ndimage's minimum_filter1d / uniform_filter1d."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    x = np.abs(decode_file(slt_wav).mono())
    for n in (1, 7, 240, x.size):
        for size in (1, 3, 241, 243):
            assert np.array_equal(loudness._running_min(x[:n], size), minimum_filter1d(x[:n], size)), (n, size)
        for size in (1, 2, 120, 121):
            assert np.allclose(loudness._running_mean(x[:n], size), uniform_filter1d(x[:n], size), atol=1e-6), (n, size)


def test_keep_dynamics_uses_one_gain_for_the_set():
    gain = loudness.dataset_gain([-30.0, -26.0, -40.0], [-12.0, -8.0, -20.0], -20.0, -1.0)
    assert gain == pytest.approx(-1.0 - (-8.0))  # the median would ask +10 dB; the loudest peak allows +7
    assert loudness.dataset_gain([-30.0, -28.0], [-20.0, -18.0], -20.0, -1.0) == pytest.approx(9.0)


def test_vad_finds_speech_and_segments_stay_within_bounds(made, awb_wav):
    d = decode_file(awb_wav)
    regions = speech_regions(d.mono(), d.sample_rate)
    assert len(regions) >= 1 and regions[0][0] > 0.1 and regions[-1][1] < 4.0  # leading/trailing silence found
    long = decode_file(made["long"])
    regions = speech_regions(long.mono(), long.sample_rate)
    assert len(regions) >= 8  # sentence pauses are silences
    plan = plan_segments(speech_units(regions), 5.0, 15.0)
    lengths = [b - a for a, b in plan]
    assert len(plan) >= 2 and all(5.0 <= x <= 15.0 for x in lengths), lengths


def test_frame_batched_vad_equals_silero_frame_by_frame(made, awb_wav, slt_wav, monkeypatch):
    """speech_regions runs silero's network with its frames batched around the LSTM; on real and
    generated speech at several rates and lengths it gives silero's own probabilities (to 1e-4) and
    the regions silero's get_speech_timestamps finds (to within one 32 ms frame)."""
    import torch

    decoded = [decode_file(p) for p in (awb_wav, slt_wav, made["long"], made["formats"]["ogg"])]
    clips = [(d.mono(), d.sample_rate) for d in decoded] + [(decoded[0].mono()[:16_037], 16_000)]
    silero = vad._silero()
    model = silero.load_silero_vad()
    threads = torch.get_num_threads()
    found = 0
    for x, sr in clips:
        got = speech_regions(x, sr)
        assert torch.get_num_threads() == threads  # VAD runs on one thread and gives the setting back
        a16 = resample(x, sr, 16_000)
        with torch.inference_mode():
            reference = model.audio_forward(torch.from_numpy(a16)[None], 16_000)[0].numpy()
            stamps = silero.get_speech_timestamps(torch.from_numpy(a16), model, sampling_rate=16_000)
        probs = vad.speech_probs(a16)
        assert probs.shape == reference.shape and np.abs(probs - reference).max() < 1e-4
        alone = [(s["start"] / 16_000, s["end"] / 16_000) for s in stamps]
        assert len(got) == len(alone) and np.allclose(got, alone, atol=512 / 16_000), (got, alone)
        found += len(got)
        monkeypatch.setattr(vad, "BLOCK_FRAMES", 7)  # the LSTM state carries across encoder blocks
        assert np.abs(vad.speech_probs(a16) - probs).max() < 1e-5
        monkeypatch.undo()
    assert found >= 12
    # a silero release with another layout falls back to its own frame-by-frame loop: same numbers
    monkeypatch.setattr(vad, "_model", lambda: (model, None, None))
    assert np.abs(vad.speech_probs(a16) - probs).max() < 1e-4


def test_segments_cut_on_word_gaps_when_words_are_known():
    words = [{"word": f"w{i}", "start": i * 0.5, "end": i * 0.5 + 0.4} for i in range(60)]  # 30 s, one VAD region
    plan = plan_segments(speech_units([(0.0, 30.0)], words), 5.0, 15.0)
    bounds = {round(x, 3) for seg in plan for x in seg} - {0.0, 30.0}
    word_gaps = {round(i * 0.5 + 0.45, 3) for i in range(60)}
    assert plan and bounds <= word_gaps and all(b - a <= 15.0 for a, b in plan)
    # without words a 40 s breath is split evenly under the maximum
    assert all(b - a <= 15.0 for a, b in plan_segments([Unit(0, 40)], 5, 15))


def test_wada_snr_ranks_clean_above_noisy_and_ignores_digital_zeros(slt_wav):
    d = decode_file(slt_wav)
    speech = speech_only(d.mono(), d.sample_rate, speech_regions(d.mono(), d.sample_rate))
    rng = np.random.default_rng(0)
    clean = wada_snr(speech)
    noisy = wada_snr(speech + rng.normal(0, 0.02, speech.shape).astype(np.float32))
    assert clean > 20 and noisy < 15 and clean - noisy > 10
    padded = np.concatenate([np.zeros(48_000, np.float32), speech])
    assert wada_snr(padded) == pytest.approx(clean, abs=0.01)


def test_clipping_detects_flat_tops_only():
    t = np.arange(24_000) / 24_000
    clean = 0.9 * np.sin(2 * np.pi * 200 * t)
    assert clipping(clean)["clipped_runs"] == 0
    clipped = np.clip(1.5 * np.sin(2 * np.pi * 200 * t), -1, 1)
    facts = clipping(clipped)
    assert facts["clipped_runs"] >= 300 and facts["clipped_fraction"] > 0.1
