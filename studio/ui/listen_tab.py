"""Listen: blind A/B and MOS sessions. Create one from audio folders (generated audio, real
recordings as a hidden reference), hand out rater links, close it, read the results with plots,
exclude raters, export every vote as CSV. Handlers are thin: the domain is studio.listening."""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from studio import served
from studio.errors import UserError
from studio.listening import results as lresults
from studio.listening import sessions as lsessions
from studio.listening.audio import AUDIO_SUFFIXES
from studio.ui import fields, live
from studio.ui.errors import page_errors
from studio.workspace import Workspace

TITLE = "Listen"
QUESTIONS = {
    "Which sounds more like <voice>?": "similar",
    "Which sounds more natural?": "natural",
    "Which is more interesting?": "interesting",
    "Custom question": "custom",
}
PLOT_SLOTS = 2  # MOS: one plot; A/B: win rates and Bradley-Terry strengths
SCREEN_COLUMNS = ["rater id", "label", "votes", "trap failures", "near-constant", "z", "flags", "excluded"]


def audio_folders(ws: Workspace) -> list[str]:
    """Workspace folders that hold audio directly (generation outputs, imports), relative paths."""
    found = []
    for top in (ws.generated_dir, ws.exports_dir / "listening", ws.root / "imports", ws.root / "recordings"):
        if not top.is_dir():
            continue
        for folder in [top, *sorted(p for p in top.rglob("*") if p.is_dir())]:
            if any(f.suffix.lower() in AUDIO_SUFFIXES for f in folder.iterdir() if f.is_file()):
                found.append(ws.relative(folder))
    return found


def parse_systems(ws: Workspace, text: str, reference: bool) -> list[lsessions.SystemSource]:
    """Lines of `NAME = FOLDER` (FOLDER inside the workspace) or a bare FOLDER (named after it)."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        name, sep, folder = line.partition("=")
        if not sep:
            name, folder = Path(line).name, line
        path = ws.inside(folder.strip())
        out.append(lsessions.SystemSource(name=name.strip(), folder=path, reference=reference))
    return out


def session_choices(ws: Workspace) -> list[tuple[str, int]]:
    return [(f"{s['id']}: {s['name']} ({s['test_type']}, {s['status']}, {s['votes']} votes)", s["id"])
            for s in lsessions.list_sessions(ws)]


def create(ws: Workspace, name, systems_text, reference_text, test_type, question_label, voice_label, custom_q,
           no_pref, trials, gold, seed):
    from workers.dispatch import submit

    with page_errors():
        systems = parse_systems(ws, systems_text, False) + parse_systems(ws, reference_text, True)
        preset = QUESTIONS.get(question_label, "natural")
        question = custom_q if preset == "custom" else preset
        params = {"name": name, "test_type": "mos" if test_type == "MOS" else "ab", "question": question,
                  "voice_label": voice_label or None, "allow_no_preference": bool(no_pref),
                  "trials_per_rater": fields.parse_int(trials, "trials per rater"), "n_gold": int(gold), "seed": fields.parse_int(seed, "the seed"),
                  "systems": [{"name": s.name, "folder": str(s.folder), "reference": s.reference} for s in systems]}
        lsessions.resolve_question(params["test_type"], question, voice_label)
        job = submit(ws, "listening_stimuli", params, wait=True)
        if job["status"] != "succeeded":
            raise UserError(job.get("error") or f"job {job['id']} {job['status']}")
    session = lsessions.get_session(ws, job["result"]["session_id"])
    notes = "".join(f"\n- {n}" for n in session["notes"])
    return (gr.update(choices=session_choices(ws), value=session["id"]),
            f"Created session {session['id']} with {session['n_items']} items at {session['target_lufs']} LUFS.{notes}")


def describe(ws: Workspace, session_id):
    if not session_id:
        return "", gr.update(choices=[], value=[])
    with page_errors():
        s = lsessions.get_session(ws, int(session_id))
    systems = ", ".join(f"{x['name']}{' (hidden reference)' if x['kind'] == 'reference' else ''}"
                        for x in s["systems"] if x["kind"] != "trap")
    text = (f"**{s['name']}** — {s['test_type'].upper()}, {s['status']}  \nQuestion: {s['question']}  \n"
            f"Systems: {systems}  \nItems {s['n_items']}, trials per rater {s['trials_per_rater']}, "
            f"gold/trap {s['n_gold']}, loudness {s['target_lufs']} LUFS  \n"
            f"Raters: {len(s['raters'])}, votes: {sum(r['votes'] for r in s['raters'])}")
    raters = [(f"{r['label']} ({r['votes']}/{r['trials']})", r["id"]) for r in s["raters"]]
    return text, gr.update(choices=raters, value=[r["id"] for r in s["raters"] if r["excluded"]])


def make_links(ws: Workspace, session_id, count, days, base_url):
    with page_errors():
        if not session_id:
            raise UserError("choose a session first")
        links = lsessions.add_raters(ws, int(session_id), int(count), expires_days=float(days),
                                     base_url=base_url or None)
    return "\n".join(f"{x['label']}: {x['link']}" for x in links)


def close(ws: Workspace, session_id):
    with page_errors():
        if not session_id:
            raise UserError("choose a session first")
        lsessions.close_session(ws, int(session_id))
    return gr.update(choices=session_choices(ws), value=int(session_id))


def show_results(ws: Workspace, session_id, excluded_ids, exclude_flagged):
    import pandas as pd
    from PIL import Image

    with page_errors():
        if not session_id:
            raise UserError("choose a session first")
        s = lsessions.get_session(ws, int(session_id))
        ids = {r["id"] for r in s["raters"]}
        chosen = set(excluded_ids or []) & ids
        lsessions.set_excluded(ws, s["id"], sorted(chosen), True)
        lsessions.set_excluded(ws, s["id"], sorted(ids - chosen), False)
        res = lresults.session_results(ws, s["id"], exclude_flagged=bool(exclude_flagged))
    screening = [[r["rater_id"], r["label"], r["votes"], r["trap_failures"], r["near_constant"],
                  "" if r["z"] is None else round(r["z"], 2), "; ".join(r["flags"]), r["excluded"]]
                 for r in res["screening"]]
    images = [Image.open(p).copy() for p in res["plots"]][:PLOT_SLOTS]
    slots = [gr.update(value=im, visible=True) for im in images]
    slots += [gr.update(value=None, visible=False)] * (PLOT_SLOTS - len(images))  # no empty frames
    headers, rows = lresults.results_table(res)
    table = gr.update(value=pd.DataFrame(rows, columns=headers), visible=bool(rows))
    return "```\n" + lresults.summary_text(res, with_paths=False) + "\n```", screening, table, *slots


def export(ws: Workspace, session_id):
    with page_errors():
        if not session_id:
            raise UserError("choose a session first")
        target = Path(tempfile.mkdtemp(prefix="bark-listen-")) / f"listening-session-{int(session_id)}-votes.csv"
        lresults.export_csv(ws, int(session_id), target)
    return str(target)


def build(ws: Workspace) -> None:
    gr.Markdown("Blind listening tests. Raters get links to a separate listening page; they never see "
                "the studio, system names or file names.")
    with gr.Accordion("New session", open=False):
        name = gr.Textbox(label="Session name (only you see it)")
        folders = gr.Dropdown(choices=audio_folders(ws), multiselect=True, label="Audio folders in the workspace",
                              info="Adds them to the systems below")
        systems = gr.Textbox(lines=3, label="Systems: one per line, NAME = FOLDER (inside the workspace)",
                             elem_id="listen-systems")
        reference = gr.Textbox(lines=1, label="Hidden reference (real recordings): NAME = FOLDER, optional")
        with gr.Row():
            test_type = gr.Radio(["A/B", "MOS"], value="A/B", label="Test")
            question = gr.Dropdown(list(QUESTIONS), value="Which sounds more natural?", label="A/B question")
            voice_label = gr.Textbox(label="Voice as raters are told it (for 'more like <voice>')")
            custom_q = gr.Textbox(label="Custom question")
        with gr.Row():
            no_pref = gr.Checkbox(label="Offer 'no preference'")
            trials = fields.id_box("Trials per rater", placeholder="every distinct trial, up to 20",
                                   elem_id="listen-trials")
            gold = gr.Number(value=2, precision=0, label="Gold/trap trials per rater")
            seed = fields.id_box("Seed (empty: random, stored)", placeholder="random")
        create_btn = gr.Button("Create session", variant="primary")
        created = gr.Markdown()
    with gr.Row():
        session = gr.Dropdown(choices=session_choices(ws), label="Session", elem_id="listen-session")
        refresh = gr.Button("Refresh", scale=0)
    summary = gr.Markdown()
    with gr.Accordion("Rater links", open=False):
        with gr.Row():
            count = gr.Number(value=5, precision=0, label="How many")
            days = gr.Number(value=14, label="Expire after (days)")
            base_url = gr.Textbox(value=lambda: served.public_url(ws), elem_id="listen-base-url",
                                  label="Address raters use (this studio's address unless "
                                        f"${served.PUBLIC_URL_ENV} names a public one)")
        links_btn = gr.Button("Make rater links")
        links = gr.Textbox(lines=5, label="Links (shown once; only hashes are stored)", interactive=False,
                           elem_id="listen-links")
        close_btn = gr.Button("Close session (stop accepting votes)", variant="stop")
    with gr.Accordion("Results", open=True):
        with gr.Row():
            exclude = gr.CheckboxGroup(label="Exclude raters", choices=[])
            exclude_flagged = gr.Checkbox(label="Exclude flagged raters")
        results_btn = gr.Button("Show results")
        report = gr.Markdown(elem_id="listen-results")
        screening = gr.Dataframe(headers=SCREEN_COLUMNS, interactive=False, label="Rater screening")
        table = gr.Dataframe(interactive=False, visible=False, wrap=True, elem_id="listen-table",
                             label="Results per system (MOS) or per pair (A/B)")
        # one image per plot, shown whole at its own aspect (a gallery tile cropped it into giant text)
        with gr.Row(elem_id="listen-plots"):
            plots = [gr.Image(label=f"Plot {i + 1}", type="pil", interactive=False, show_label=False,
                              elem_id=f"listen-plot-{i + 1}") for i in range(PLOT_SLOTS)]
        export_btn = gr.Button("Export CSV")
        csv_file = gr.File(label="Votes (CSV)")

    def add_folders(picked, text):  # each picked folder once, after what is there
        lines = (text or "").splitlines()
        return "\n".join([*lines, *(x for x in (f"{Path(p).name} = {p}" for p in picked or []) if x not in lines)]).strip()

    folders.change(add_folders, [folders, systems], systems)
    create_btn.click(lambda *a: create(ws, *a), [name, systems, reference, test_type, question, voice_label, custom_q,
                                                 no_pref, trials, gold, seed], [session, created])
    refresh.click(lambda: gr.update(choices=session_choices(ws)), None, session)
    live.keep_current([session, folders], lambda: [live.choices_update(session_choices(ws)),
                                                   live.choices_update(audio_folders(ws))])
    session.change(lambda sid: describe(ws, sid), session, [summary, exclude])
    links_btn.click(lambda sid, c, d, u: make_links(ws, sid, c, d, u), [session, count, days, base_url], links)
    close_btn.click(lambda sid: close(ws, sid), session, session)
    results_btn.click(lambda sid, ex, fl: show_results(ws, sid, ex, fl), [session, exclude, exclude_flagged],
                      [report, screening, table, *plots])
    export_btn.click(lambda sid: export(ws, sid), session, csv_file)


if __name__ == "__main__":
    with gr.Blocks() as demo:
        build(Workspace.resolve())
    demo.launch()
