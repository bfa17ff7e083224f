"""Objective metrics for generated speech: WER, speaker similarity, prosody, and descriptors of
odd behaviour. Audio files (or arrays) in, plain numbers out. Never imports studio/ or workers/."""
