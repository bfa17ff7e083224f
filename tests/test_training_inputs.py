"""Training inputs the generation never builds are not trained on: the forgetting guard's
samples, cut at a length cap, carry no EOS target the base model never chose."""
from __future__ import annotations

from models import constants as C
from models import layouts as L
from models.presets import load_bark, load_text_tokenizer
from workers.handlers.train import TINY_GUARD, guard_items


def test_the_forgetting_guard_learns_no_eos_the_base_never_chose():
    items = guard_items(load_bark("tiny"), load_text_tokenizer("tiny"), tiny=True)
    assert items
    assert any(not it.ended for it in items)  # the random base runs to the cap: the case under test
    for it in items:
        assert it.ended == (len(it.semantic) < TINY_GUARD[1])
        (example,) = L.build_examples("semantic", it)
        labels = example.tensors["labels"][C.MAX_INPUT_SEMANTIC_LENGTH:]
        assert (labels == C.SEMANTIC_EOS_TOKEN).any() == it.ended
        assert len(labels) == len(it.semantic) + int(it.ended)
