"""Bark Studio's ML core: presets, tokens, training layouts, LoRA, training, generation, metrics.

Tensors and files in, tensors and files out; never imports studio/ or workers/. See README.md."""
