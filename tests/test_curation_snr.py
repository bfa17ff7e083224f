"""The SNR estimate that prepare filters on, against mixtures whose SNR is known.

Each mixture is one ARCTIC fixture's speech plus white, pink or babble-like noise scaled to a known
SNR. The truth is defined on the speech regions (silero's regions on the clean speech): the clean
speech's mean power there over the noise's mean power there. The fixture is gated to digital
silence outside its speech regions and padded with 1 s of silence at each end before the noise is
added, so the only noise is the noise we add (the fixtures' own ~27-33 dB room tone would otherwise
count as speech in the truth and as noise in the estimate). The estimate is what prepare uses:
`speech_snr` on the mixture with the VAD's regions of the mixture."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from studio.audio.quality import speech_snr
from studio.audio.resample import resample
from studio.audio.vad import speech_regions

SR = 16_000
TOLERANCE_DB = 3.0


def _mask(regions, n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    for s, e in regions:
        m[max(0, int(s * SR)):max(0, int(e * SR))] = True
    return m


@pytest.fixture(scope="module")
def speech(awb_wav, slt_wav) -> dict[str, np.ndarray]:
    out = {}
    for name, path in (("awb", awb_wav), ("slt", slt_wav)):
        x, sr = sf.read(path, dtype="float32")
        assert sr == SR
        gate = _mask(speech_regions(x, SR), x.size).astype(np.float32)
        gate = np.convolve(gate, np.ones(160) / 160, "same").astype(np.float32)  # 10 ms fades, no clicks
        pad = np.zeros(SR, np.float32)
        out[name] = np.concatenate([pad, x * gate, pad])
    return out


def white(n: int, rng, speech) -> np.ndarray:
    return rng.standard_normal(n)


def pink(n: int, rng, speech) -> np.ndarray:
    """Power falling 3 dB per octave: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spectrum[0] = 0
    spectrum[1:] /= np.sqrt(f[1:])
    return np.fft.irfft(spectrum, n)


def babble(n: int, rng, speech, talkers: int = 10) -> np.ndarray:
    """Ten talkers from both fixtures' voiced parts, each at its own pitch and tempo (resampled by
    0.8-1.16x), looped and started at a random point, each at equal power."""
    out = np.zeros(n)
    voiced = [x[np.abs(x) > 0] for x in speech.values()]
    for k in range(talkers):
        voice = resample(voiced[k % 2], SR, int(SR * (0.8 + 0.4 * k / talkers)))
        voice = np.tile(voice, n // voice.size + 2)
        start = rng.integers(0, voice.size - n)
        out += voice[start:start + n] / np.sqrt(np.mean(voice ** 2))
    return out


@pytest.mark.parametrize("noise", [white, pink, babble], ids=lambda f: f.__name__)
@pytest.mark.parametrize("fixture", ["awb", "slt"])
def test_snr_estimate_is_within_3_db_of_the_truth_from_5_to_30_db(speech, fixture, noise):
    clean = speech[fixture]
    on_speech = _mask(speech_regions(clean, SR), clean.size)
    speech_power = np.mean(clean[on_speech].astype(np.float64) ** 2)
    rng = np.random.default_rng(17)
    shape = noise(clean.size, rng, speech)
    misses = {}
    for truth in (5, 10, 20, 30):
        scaled = shape * np.sqrt(speech_power / np.mean(shape[on_speech] ** 2) / 10 ** (truth / 10))
        mixture = (clean + scaled).astype(np.float32)
        estimate, method = speech_snr(mixture, SR, speech_regions(mixture, SR))
        misses[truth] = (round(estimate - truth, 2), method)
    assert all(abs(miss) <= TOLERANCE_DB for miss, _ in misses.values()), misses


def test_clean_arctic_recordings_read_as_clean(awb_wav, slt_wav):
    """The fixtures as recorded: speech ~27 dB (awb) and ~33 dB (slt) over their own room tone."""
    for path, low in ((awb_wav, 24), (slt_wav, 28)):
        x, sr = sf.read(path, dtype="float32")
        snr, _ = speech_snr(x, sr, speech_regions(x, sr))
        assert snr > low, (path.name, snr)
