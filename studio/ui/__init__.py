"""The Gradio studio: one tab per module, each a Blocks section that also runs on its own."""
