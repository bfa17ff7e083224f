"""The Generate tab's conditioning controls: for an adapter trained with `--condition`, a speaker
(and an optional second one with a mix slider), a slider per numeric label over its trained range
and a dropdown per categorical label; hidden for unconditioned adapters. What they produce is the
`generate` job's `speaker`/`labels` params, exactly as `generate --speaker A:0.7 --speaker B:0.3
--label accent=0.35` makes them.

The labels come from the adapter's manifest (its `conditioning` entry, stored in the adapters
table): the web process never loads the adapter. Gradio needs a fixed set of components, so
MAX_LABELS sliders and dropdowns are built and the unused ones hidden.

The voice library (another tab) hands a voice over with `hand_over(event)`: its click event's
State output is applied to these controls once the Generate tab is built."""
from __future__ import annotations

import weakref

import gradio as gr
from gradio.context import Context

from studio.conditioning import between
from studio.datasets.labels import SPEAKER
NO_SECOND = "(none)"
MAX_LABELS = 4  # non-speaker labels one adapter shows controls for
_handovers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # root Blocks -> [(event, State)]


def conditioning_labels(ws, adapter_name: str | None) -> list[dict] | None:
    """The label specs of a conditioned adapter ([{name, kind, categories | lo, hi}]); None for an
    adapter without conditioning, or none chosen."""
    from studio import training

    if not adapter_name or adapter_name == "(none)":
        return None
    try:
        manifest = training.get_adapter(ws, adapter_name)["manifest"] or {}
    except Exception:  # a stale choice (adapter deleted): nothing to show
        return None
    return ((manifest.get("conditioning") or {}).get("labels")) or None


def speakers_of(labels: list[dict] | None) -> list[str]:
    spec = next((s for s in labels or [] if s["name"] == SPEAKER), None)
    return list(spec["categories"]) if spec else []


def condition_params(speaker: str | None, second: str | None, mix, label_values: dict) -> dict:
    """{"speaker": {a: 1 - mix, b: mix}, "labels": {...}}: the CLI's params (weights > 0 only)."""
    paired = bool(speaker and second and second != NO_SECOND and second != speaker)
    weights = between(speaker, second, float(mix or 0)) if paired else ({speaker: 1.0} if speaker else {})
    labels = {k: v for k, v in label_values.items() if v not in (None, "")}
    return {k: v for k, v in ((SPEAKER, weights), ("labels", labels)) if v}


class ConditionControls:
    """The components, and how to fill them from an adapter and read them into job params."""

    def __init__(self, elem_prefix: str = "gen-cond"):
        with gr.Group(visible=False, elem_id=elem_prefix) as self.group:
            self.title = gr.Markdown(elem_id=f"{elem_prefix}-title")
            with gr.Row():
                self.speaker = gr.Dropdown(label="Speaker", choices=[], value=None, elem_id=f"{elem_prefix}-speaker")
                self.second = gr.Dropdown(label="Second speaker (optional)", choices=[NO_SECOND], value=NO_SECOND,
                                          elem_id=f"{elem_prefix}-second")
                self.mix = gr.Slider(0, 1, value=0.0, step=0.05, label="Mix (0 = first speaker, 1 = second)",
                                     elem_id=f"{elem_prefix}-mix")
            with gr.Row():
                self.sliders = [gr.Slider(0, 1, value=0, label="", visible=False, elem_id=f"{elem_prefix}-num-{i + 1}")
                                for i in range(MAX_LABELS)]
                self.dropdowns = [gr.Dropdown(choices=[], value=None, label="", visible=False,
                                              elem_id=f"{elem_prefix}-cat-{i + 1}") for i in range(MAX_LABELS)]
        self.label_names = gr.State({})  # {"numeric": [names of the shown sliders], "categorical": [dropdowns']}

    @property
    def inputs(self) -> list:
        return [self.speaker, self.second, self.mix, self.label_names, *self.sliders, *self.dropdowns]

    @property
    def outputs(self) -> list:
        return [self.group, self.title, self.speaker, self.second, self.mix, self.label_names, *self.sliders,
                *self.dropdowns]

    def updates(self, ws, adapter_names, speaker=None, second=None, mix=None) -> list:
        """Show the controls of the first conditioned adapter among `adapter_names` (a generation
        applies at most one); keep a chosen speaker when the adapter still knows it."""
        name, labels = next(((n, lab) for n in adapter_names if (lab := conditioning_labels(ws, n))), (None, None))
        if not labels:
            return [gr.update(visible=False), "", gr.update(choices=[], value=None),
                    gr.update(choices=[NO_SECOND], value=NO_SECOND), gr.update(value=0.0), {},
                    *[gr.update(visible=False)] * (2 * MAX_LABELS)]
        speakers = speakers_of(labels)
        numeric = [s for s in labels if s["kind"] == "numeric"][:MAX_LABELS]
        categorical = [s for s in labels if s["kind"] != "numeric" and s["name"] != SPEAKER][:MAX_LABELS]
        sliders = [gr.update(visible=True, minimum=s["lo"], maximum=s["hi"], value=(s["lo"] + s["hi"]) / 2,
                             step=(s["hi"] - s["lo"]) / 100, label=f"{s['name']} ({s['lo']:g}..{s['hi']:g})")
                   for s in numeric] + [gr.update(visible=False)] * (MAX_LABELS - len(numeric))
        dropdowns = [gr.update(visible=True, choices=list(s["categories"]), value=s["categories"][0], label=s["name"])
                     for s in categorical] + [gr.update(visible=False)] * (MAX_LABELS - len(categorical))
        names = {"numeric": [s["name"] for s in numeric], "categorical": [s["name"] for s in categorical]}
        return [gr.update(visible=True), f"**{name}** is conditioned on {', '.join(s['name'] for s in labels)}",
                gr.update(choices=speakers, value=speaker if speaker in speakers else (speakers or [None])[0],
                          visible=bool(speakers)),
                gr.update(choices=[NO_SECOND, *speakers], value=second if second in speakers else NO_SECOND,
                          visible=len(speakers) > 1),
                gr.update(value=float(mix) if mix is not None else 0.0, visible=len(speakers) > 1), names,
                *sliders, *dropdowns]

    @staticmethod
    def params(values) -> dict:
        """The job params from the values of `inputs` (in that order)."""
        speaker, second, mix, names, *rest = values
        numeric, categorical = rest[:MAX_LABELS], rest[MAX_LABELS:]
        names = names or {}
        chosen = {**dict(zip(names.get("numeric", []), numeric)), **dict(zip(names.get("categorical", []), categorical))}
        return condition_params(speaker, second, mix, chosen)

    def wire(self, ws, adapter_dropdowns: list) -> None:
        """Refresh when any adapter slot changes (a pick, a reuse, a handover)."""
        def refresh(*values):
            *names, speaker, second, mix = values
            return self.updates(ws, names, speaker, second, mix)

        for dropdown in adapter_dropdowns:
            dropdown.change(refresh, inputs=[*adapter_dropdowns, self.speaker, self.second, self.mix],
                            outputs=self.outputs, show_progress="hidden")

    def receive_handovers(self, ws, model, first_adapter) -> None:
        """Apply what the voice library hands over ({adapter, speaker, second, mix}) to the base
        model (the adapter's), the first adapter slot and these controls."""
        def apply(h):
            if not h:
                return [gr.skip()] * (2 + len(self.outputs))
            from studio import training
            from studio.ui.fields import adapter_choices

            base = training.get_adapter(ws, h["adapter"])["base_model"]
            return [base, gr.update(choices=adapter_choices(ws), value=h["adapter"]),
                    *self.updates(ws, [h["adapter"]], h.get("speaker"), h.get("second"), h.get("mix"))]

        for event, state in _handovers.get(Context.root_block, []):
            event.then(apply, inputs=state, outputs=[model, first_adapter, *self.outputs])


def hand_over(event, state) -> None:
    """Register a click event whose `state` ({adapter, speaker, second, mix}) fills the Generate tab."""
    if Context.root_block is not None:
        _handovers.setdefault(Context.root_block, []).append((event, state))
