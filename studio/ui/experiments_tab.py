"""Experiments: each experiment's record page (hypothesis, dataset, arms, prompts, the metrics of
its sweeps and evals with their plots, listening results, emergent entries, the conclusion),
and the gallery of the emergent-behaviour log: playback, waveform and spectrogram, the
parameters that reproduce each clip, tags, notes, stars, filters, export.
Handlers are thin: the domain is studio.experiments; heavy work (sweeps, evals) is a job."""
from __future__ import annotations

import gradio as gr

from studio.errors import UserError
from studio.experiments import emergent, records
from studio.ui import fields, live, sweep_launcher, tag_probe_view
from studio.ui.errors import page_errors
from studio.workspace import Workspace

TITLE = "Experiments"
GALLERY_COLUMNS = ["id", "source", "stars", "tags", "reason / notes", "audio"]
KEY_METRICS = ("wer", "speaker_similarity", "f0_corr", "f0_rmse_cents", "duration_s", "speaking_rate_wps",
               "music_likeness", "nonspeech_share", "loudness_lufs")


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def page_markdown(p: dict) -> str:
    """The experiment's page as Markdown: one place for everything it gathered."""
    lines = [f"## {p['name']}  ({p['status']})", f"**Hypothesis:** {p['hypothesis'] or '-'}", "",
             f"**Dataset:** {p['dataset'] or '-'}", "", "**Arms**", ""]  # blank lines: a paragraph each
    lines += [f"- `{a['name']}` ({a['kind']}): model {a['model']}"
              + (f", voice {a['voice']}" if a.get("voice") else "")
              + "".join(f", adapter {x['path']} x{x['scale']}" for x in a.get("adapters") or []) for a in p["arms"]]
    lines += ["", "**Test prompts**", ""] + [f"{i + 1}. {t}" for i, t in enumerate(p["prompts"])]
    for s in p["sweeps"]:
        summary = s.get("summary") or {}
        lines += ["", f"### {s['mode']} {s['id']} {s['name']} ({s['status']}, {summary.get('n_outputs', 0)} outputs)"]
        floors = summary.get("floors") or {}
        named = [f"{k}: {_fmt(floors[k])}" for k in ("asr_model", "wer_floor", "speaker_encoder",
                                                      "real_vs_real_similarity") if floors.get(k) is not None]
        if named:
            lines.append("; ".join(named))
        by_arm = summary.get("by_arm") or {}
        metrics = [m for m in KEY_METRICS if m in by_arm]
        arms = sorted({a for m in metrics for a in by_arm[m]})
        if metrics:
            lines += ["", "| arm | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
            for arm in arms:
                cells = []
                for m in metrics:
                    st = by_arm[m].get(arm) or {}
                    ci = st.get("ci95")
                    cells.append(_fmt(st.get("mean")) + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))
                lines.append(f"| {arm or '(all)'} | " + " | ".join(cells) + " |")
    lines += ["", "### Listening"]
    if not p["listening"]:
        lines.append("No listening session linked yet.")
    for r in p["listening"]:
        if r.get("error"):
            lines.append(f"- session {r['session_id']}: {r['error']}")
            continue
        lines.append(f"- session {r['session_id']} **{r['name']}** ({r['test_type']}, {r['n_votes']} votes): "
                     f"{r['question']}")
        for pair in (r.get("ab") or {}).get("pairs") or []:  # a line per pair, as the Listen tab words it
            ci = pair.get("ci") or [None, None]
            lines.append(f"  - A/B {pair['system_x']} vs {pair['system_y']}: {pair['system_x']} won {pair['wins']}, "
                         f"{pair['system_y']} won {pair['losses']}, ties {pair['ties']}; win rate "
                         f"{_fmt(pair.get('win_rate'))} [{_fmt(ci[0])}, {_fmt(ci[1])}], p = {_fmt(pair.get('p_value'))}")
        if r.get("mos"):
            for row in r["mos"]:
                lines.append(f"  - MOS {row.get('system')}: {_fmt(row.get('mean'))}")
    lines += ["", f"### Emergent log ({len(p['emergent'])} entries)"]
    lines += [f"- #{e['id']} {e['source']} {'*' * e['stars']} {e['flag_reason'] or e['notes'] or ''}"
              for e in p["emergent"]]
    lines += ["", "### Conclusion", p["conclusion"] or "_Not concluded yet._"]
    return "\n".join(lines)


def _plots(p: dict, ws: Workspace) -> list[str]:
    return [str(ws.root / x) for s in p["sweeps"] for x in s["plots"]]


def experiment_choices(ws: Workspace) -> list[tuple[str, int]]:
    return [(f"{e['id']}: {e['name']} ({e['status']})", e["id"]) for e in records.list_experiments(ws)]


def show(ws: Workspace, exp_id):
    if not exp_id:
        return "Pick or create an experiment.", []
    with page_errors():
        p = records.page(ws, int(exp_id))
    return page_markdown(p), _plots(p, ws)


def parse_arms(text: str, ws: Workspace | None = None) -> list[dict]:
    """Lines of `name=...,kind=...,adapter=PATH:SCALE,voice=PATH,model=...` (as the CLI takes them)."""
    from studio.experiments.arms import parse_arm

    lines = [line for line in (text or "").splitlines() if line.strip()]
    return [parse_arm(line, ws, f"arm line {i}:") for i, line in enumerate(lines, 1)]


def create(ws: Workspace, name, hypothesis, dataset, arms_text, prompts_text):
    with page_errors():
        exp = records.create_experiment(ws, name=name, hypothesis=hypothesis, dataset=dataset or None,
                                        arms=parse_arms(arms_text, ws), prompts=(prompts_text or "").splitlines())
    md, plots = show(ws, exp["id"])
    return gr.update(choices=experiment_choices(ws), value=exp["id"]), md, plots


def conclude(ws: Workspace, exp_id, text):
    with page_errors():
        if not exp_id:
            raise UserError("pick an experiment first")
        records.conclude(ws, int(exp_id), text)
    return show(ws, exp_id)


def link(ws: Workspace, exp_id, session_id):
    with page_errors():
        if not exp_id or not session_id:
            raise UserError("pick an experiment and give a listening session id")
        records.update_experiment(ws, int(exp_id),
                                  add_listening=[fields.parse_int(session_id, "the listening session id")])
    return show(ws, exp_id)


# Gallery -----------------------------------------------------------------------------------------

def gallery_rows(ws: Workspace, tag, min_stars, source, exp_id) -> list[list]:
    rows = emergent.list_entries(ws, tag=tag or None, min_stars=int(min_stars or 0),
                                 source=None if source in (None, "", "any") else source,
                                 experiment_id=int(exp_id) if exp_id else None)
    return [[e["id"], e["source"], e["stars"], ", ".join(e["tags"]), e["flag_reason"] or e["notes"] or "",
             e["audio_path"] or ""] for e in rows]


def open_entry(ws: Workspace, entry_id):
    """Playback, the waveform + spectrogram image, the parameters, and the editable fields."""
    from studio.experiments.plots import waveform_and_spectrogram

    with page_errors():
        entry_id = fields.parse_int(entry_id, "the entry id")
    if not entry_id:
        return None, None, {}, "", "", 0
    entry = next((e for e in emergent.list_entries(ws) if e["id"] == entry_id), None)
    if entry is None:
        raise gr.Error(f"no emergent-log entry {entry_id}")
    audio = ws.root / entry["audio_path"] if entry["audio_path"] else None
    image = None
    if audio is not None and audio.is_file():
        image = ws.generated_dir / "gallery" / f"entry-{entry['id']}.png"
        if not image.exists():
            waveform_and_spectrogram(audio, image)
    info = {"params": entry["params"], "flag_reason": entry["flag_reason"], "descriptors": entry["descriptors"],
            "metrics": entry["metrics"]}
    return (str(audio) if audio else None, str(image) if image else None, info, ", ".join(entry["tags"]),
            entry["notes"], entry["stars"])


def save_entry(ws: Workspace, entry_id, tags_text, notes, stars):
    with page_errors():
        entry_id = fields.parse_int(entry_id, "the entry id")
        if not entry_id:
            raise UserError("pick an entry first")
        current = next((e for e in emergent.list_entries(ws) if e["id"] == int(entry_id)), None)
        wanted = {t.strip().lower() for t in (tags_text or "").split(",") if t.strip()}
        dropped = set(current["tags"] if current else []) - wanted
        emergent.update_entry(ws, int(entry_id), stars=int(stars), notes=notes or "",
                              add_tags=sorted(wanted), remove_tags=sorted(dropped))
    return f"Saved entry {entry_id}."


def add_output(ws: Workspace, output_id, exp_id):
    with page_errors():
        if not output_id:
            raise UserError("give a sweep output id")
        e = emergent.add_entry(ws, output_id=fields.parse_int(output_id, "the sweep output id"), experiment_id=int(exp_id) if exp_id else None)
    return f"Added output {output_id} to the log as entry {e['id']}."


def export(ws: Workspace, tag, min_stars, source, exp_id):
    from studio.db import utcnow

    rows = emergent.list_entries(ws, tag=tag or None, min_stars=int(min_stars or 0),
                                 source=None if source in (None, "", "any") else source,
                                 experiment_id=int(exp_id) if exp_id else None)
    target = ws.generated_dir / "exports" / f"emergent-{utcnow():%Y%m%d-%H%M%S}.zip"
    return str(emergent.export_entries(ws, rows, target))


def build(ws: Workspace) -> None:
    with gr.Row():
        exp = gr.Dropdown(label="Experiment", choices=experiment_choices(ws), value=None, elem_id="exp-select",
                          scale=3)
        refresh = gr.Button("Refresh", scale=0)
    with gr.Accordion("New experiment", open=False):
        name = gr.Textbox(label="Name", elem_id="exp-name")
        hypothesis = gr.Textbox(label="Hypothesis", lines=2)
        dataset = gr.Textbox(label="Dataset (name or id)")
        arms = gr.Textbox(label="Arms, one per line", lines=3,
                          placeholder="name=base,kind=base\nname=prompted,kind=voice_prompt,voice=voices/x.npz\n"
                                      "name=lora,kind=finetune,adapter=adapters/x:1.0")
        prompts = gr.Textbox(label="Test prompts, one per line", lines=3)
        create_btn = gr.Button("Create experiment", variant="primary")
    page = gr.Markdown("Pick or create an experiment.", elem_id="exp-page")
    plots = gr.Gallery(label="Metric plots", columns=2, height="auto", object_fit="contain", preview=False,
                       elem_id="exp-plots")
    with gr.Row():
        session = fields.id_box("Listening session id", placeholder="its number in the Listen tab")
        link_btn = gr.Button("Link listening session")
    with gr.Row():
        conclusion = gr.Textbox(label="Conclusion", lines=2, scale=3)
        conclude_btn = gr.Button("Conclude", scale=0)

    sweep_ended = sweep_launcher.build(ws, exp)
    with gr.Accordion("Tag probe: what each declared tag does under an adapter", open=False):
        tag_probe_view.build(ws)

    gr.Markdown("## Emergent-behaviour log")
    with gr.Row():
        f_tag = gr.Textbox(label="Tag")
        f_stars = gr.Slider(0, 5, value=0, step=1, label="At least stars", elem_id="emergent-min-stars")
        f_source = gr.Dropdown(["any", "auto", "manual"], value="any", label="Source")
        f_only_exp = gr.Checkbox(label="Only this experiment", value=False)
    table = gr.Dataframe(headers=GALLERY_COLUMNS, value=lambda: gallery_rows(ws, None, 0, None, None),
                         interactive=False, elem_id="emergent-table")
    with gr.Row():
        entry_id = fields.id_box("Entry id", placeholder="click a row above", elem_id="emergent-entry-id")
        open_btn = gr.Button("Open", elem_id="emergent-open")
    with gr.Row():
        audio = gr.Audio(label="Playback", type="filepath", interactive=False, elem_id="emergent-audio")
        image = gr.Image(label="Waveform and spectrogram", type="filepath", interactive=False,
                         elem_id="emergent-image")
    params = gr.JSON(label="Parameters to reproduce, descriptors, metrics", elem_id="emergent-params")
    with gr.Row():
        tags = gr.Textbox(label="Tags (comma-separated)", elem_id="emergent-tags")
        notes = gr.Textbox(label="Notes", elem_id="emergent-notes")
        stars = gr.Slider(0, 5, value=0, step=1, label="Stars", elem_id="emergent-stars")
        save_btn = gr.Button("Save", elem_id="emergent-save")
    with gr.Row():
        add_id = fields.id_box("Add a sweep output by id", placeholder="a sweep output's id")
        add_btn = gr.Button("Add to log")
        export_btn = gr.Button("Export filtered")
    status = gr.Markdown(elem_id="emergent-status")
    exported = gr.File(label="Export")

    def filters_exp(only, exp_id):
        return exp_id if only else None

    def reload(tag, min_stars, source, only, exp_id):
        return gallery_rows(ws, tag, min_stars, source, filters_exp(only, exp_id))

    filter_inputs = [f_tag, f_stars, f_source, f_only_exp, exp]
    refresh.click(lambda: gr.update(choices=experiment_choices(ws)), outputs=exp)
    live.keep_current(exp, lambda: live.choices_update(experiment_choices(ws)))
    exp.change(lambda e: show(ws, e), inputs=exp, outputs=[page, plots])
    create_btn.click(lambda *a: create(ws, *a), inputs=[name, hypothesis, dataset, arms, prompts],
                     outputs=[exp, page, plots])
    link_btn.click(lambda e, s: link(ws, e, s), inputs=[exp, session], outputs=[page, plots])
    conclude_btn.click(lambda e, t: conclude(ws, e, t), inputs=[exp, conclusion], outputs=[page, plots])
    sweep_ended.change(lambda e: show(ws, e), inputs=exp, outputs=[page, plots])  # its metrics join the page
    for f in (f_tag, f_stars, f_source, f_only_exp):
        f.change(reload, inputs=filter_inputs, outputs=table)
    entry_outputs = [audio, image, params, tags, notes, stars]
    open_btn.click(lambda i: open_entry(ws, i), inputs=entry_id, outputs=entry_outputs)

    def pick(evt: gr.SelectData):  # clicking a row opens that entry
        return evt.row_value[0] if evt.row_value else None

    table.select(pick, outputs=entry_id).then(lambda i: open_entry(ws, i), inputs=entry_id, outputs=entry_outputs)
    save_btn.click(lambda i, t, n, s: save_entry(ws, i, t, n, s), inputs=[entry_id, tags, notes, stars],
                   outputs=status).then(reload, inputs=filter_inputs, outputs=table)
    add_btn.click(lambda i, e: add_output(ws, i, e), inputs=[add_id, exp], outputs=status).then(
        reload, inputs=filter_inputs, outputs=table).then(lambda e: show(ws, e), inputs=exp, outputs=[page, plots])
    export_btn.click(lambda *a: export(ws, *a[:3], filters_exp(a[3], a[4])), inputs=filter_inputs, outputs=exported)


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
