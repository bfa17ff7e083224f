"""Generate tab domain: a generation from the history goes to the emergent-behaviour log with the
parameters that reproduce it."""
import shutil

import pytest

from studio import voices
from studio.errors import NotFound
from studio.experiments.emergent import list_entries
from studio.ui.generate_tab import send_to_emergent_log


def test_a_generation_sent_to_the_emergent_log_keeps_its_parameters(ws, awb_wav):
    wav = ws.generated_dir / "g1.wav"
    shutil.copyfile(awb_wav, wav)
    gen = voices.record_generation(ws, text="Hello [laughs]", model="tiny", voice=None, adapters=[["a", 1.5]],
                                   seed=7, params={"semantic_temperature": 0.7}, audio_path=wav,
                                   duration=3.5, job_id=None)
    entry = send_to_emergent_log(ws, gen["id"], notes="odd laugh")
    assert entry["generation_id"] == gen["id"] and entry["source"] == "manual"
    assert entry["params"]["text"] == "Hello [laughs]" and entry["params"]["seed"] == 7
    assert [e["id"] for e in list_entries(ws)] == [entry["id"]]
    with pytest.raises(NotFound):
        send_to_emergent_log(ws, 999)
