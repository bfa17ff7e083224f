"""Audio curation: decoding untrusted files safely, validation, resampling, loudness, VAD,
segmentation, SNR and clipping. Pure functions on numpy arrays and files; no model download
(silero-vad's weights ship inside its package)."""
