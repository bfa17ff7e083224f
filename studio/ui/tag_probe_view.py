"""The tag probe panel (mounted in the Experiments tab): pick an adapter, start a probe of its
dataset's declared tags (a job), and read a finished probe: the table (tag x measure: base and
adapter, control and with tag) and every take, playable. Audio is played from the take's path as
the job stored it inside the workspace's generated folder, which the studio's authenticated file
route serves; nothing the browser sends is used as a path. Handlers are thin: the domain is
studio.experiments.tag_probe; generation is a job."""
from __future__ import annotations

import gradio as gr

from studio import training
from studio.errors import UserError
from studio.experiments import tag_probe as TP
from studio.ui.errors import page_errors
from studio.workspace import Workspace

TAKE_COLUMNS = ["take", "tag", "arm", "tag or control", "carrier", "seed", "window", "text"]


def adapter_choices(ws: Workspace) -> list[str]:
    return [a["name"] for a in training.list_adapters(ws) if a.get("dataset")]


def probe_choices(ws: Workspace) -> list[tuple[str, int]]:
    return [(f"job {j['id']}: {j['result']['adapter']} ({len(j['result']['takes'])} takes)", j["id"])
            for j in TP.probes(ws)]


def _probe(ws: Workspace, job_id) -> dict | None:
    if job_id in (None, ""):
        return None
    found = [j for j in TP.probes(ws, limit=200) if j["id"] == int(job_id)]
    return found[0]["result"] if found else None


def table_rows(result: dict | None) -> list[list]:
    if not result:
        return []
    return [[r.get(c) if c in ("tag", "measure") else (None if r.get(c) is None else round(r[c], 4))
             for c in TP.TABLE_COLUMNS] for r in result["table"]]


def take_rows(result: dict | None) -> list[list]:
    if not result:
        return []
    return [[t["key"], t["tag"], t["arm"], "tag" if t["with_tag"] else "control", t["carrier"], t["seed"],
             "proportional" if t["alignment"] == TP.PROPORTIONAL else t["alignment"], t["text"]]
            for t in result["takes"]]


def take_audio(ws: Workspace, result: dict | None, key: str | None) -> str | None:
    """The served file of one take: looked up by its key in the stored result, and only if it lies
    inside the generated folder (the file route serves that folder and no other)."""
    if not result or not key:
        return None
    for t in result["takes"]:
        if t["key"] == key and t.get("audio_path"):
            try:
                path = ws.inside(t["audio_path"])
            except UserError:
                return None
            if path.is_file() and ws.generated_dir.resolve() in path.resolve().parents:
                return str(path)
    return None


def start_probe(ws: Workspace, adapter: str | None, tags: str, seeds) -> str:
    from workers.dispatch import submit

    if not adapter:
        raise UserError("choose an adapter first")
    params = TP.probe_request(ws, adapter, [t for t in (tags or "").split(",") if t.strip()], int(seeds or 2))
    job = submit(ws, TP.KIND, params)
    return f"Tag probe started: job {job['id']} ({len(params['tags'])} tags). Refresh when it has finished."


def build(ws: Workspace) -> dict:
    """The panel's components (the caller places it inside its Blocks)."""
    gr.Markdown("### Tag probe\nEach declared tag of the adapter's dataset in fixed sentences, with and without "
                "the tag, with the adapter and with its base model (same seeds). Measured in the tag's window: "
                f"{TP.PROPORTIONAL}; a take too short for one is measured whole.")
    with gr.Row():
        adapter = gr.Dropdown(label="Adapter", choices=adapter_choices(ws), elem_id="tp-adapter")
        tags = gr.Textbox(label="Tags (comma-separated; empty: all declared)", elem_id="tp-tags")
        seeds = gr.Number(label="Seeds", value=2, precision=0, minimum=1, maximum=TP.MAX_SEEDS, elem_id="tp-seeds")
        start = gr.Button("Probe tags", variant="primary", elem_id="tp-start")
    status = gr.Markdown(elem_id="tp-status")
    with gr.Row():
        probe = gr.Dropdown(label="Finished probe", choices=probe_choices(ws), elem_id="tp-probe")
        refresh = gr.Button("Refresh", elem_id="tp-refresh", scale=0)
    table = gr.Dataframe(headers=list(TP.TABLE_COLUMNS), interactive=False, elem_id="tp-table")
    takes = gr.Dataframe(headers=TAKE_COLUMNS, interactive=False, elem_id="tp-takes")
    take = gr.Dropdown(label="Play take", elem_id="tp-take")
    audio = gr.Audio(label="Take", type="filepath", interactive=False, elem_id="tp-audio")

    @page_errors()
    def _start(a, t, s):
        return start_probe(ws, a, t, s)

    def _refresh():
        return gr.update(choices=adapter_choices(ws)), gr.update(choices=probe_choices(ws))

    def _show(job_id):
        result = _probe(ws, job_id)
        keys = [t["key"] for t in (result or {}).get("takes", [])]
        return table_rows(result), take_rows(result), gr.update(choices=keys, value=None), None

    start.click(_start, [adapter, tags, seeds], status)
    refresh.click(_refresh, None, [adapter, probe])
    probe.change(_show, probe, [table, takes, take, audio])
    take.change(lambda j, k: take_audio(ws, _probe(ws, j), k), [probe, take], audio)
    return {"adapter": adapter, "tags": tags, "seeds": seeds, "start": start, "status": status, "probe": probe,
            "refresh": refresh, "table": table, "takes": takes, "take": take, "audio": audio}
