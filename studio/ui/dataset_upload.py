"""The Dataset tab's upload panel: many recordings, lists or zips are copied into the workspace
as they are (the web process decodes nothing) and an import job reads the staged copies."""
from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

import gradio as gr

from studio.ui.errors import page_errors
from studio.workspace import Workspace

UPLOAD_TYPES = [".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".zip", ".csv", ".tsv", ".txt", ".lab", ".list"]
_SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


def stage_uploads(ws: Workspace, files: list) -> tuple[list[str], str]:
    """Copy uploaded files into the workspace (no decoding): audio and lists in one folder, so corpus
    layouts are recognised; each zip on its own. Returns (paths relative to the workspace, staging dir)."""
    from studio.ui.uploads import discard_upload

    token = secrets.token_hex(8)
    root = ws.tmp_dir / "uploads" / token
    (root / "upload").mkdir(parents=True)
    (root / "zips").mkdir()
    paths, has_loose = [], False
    for f in files or []:
        src = Path(f if isinstance(f, str) else getattr(f, "name", f))
        name = _SAFE_NAME.sub("_", src.name).strip(" .") or "upload"
        dest_dir = root / "zips" if name.lower().endswith(".zip") else root / "upload"
        dest = dest_dir / name
        n = 1
        while dest.exists():
            dest = dest_dir / f"{Path(name).stem}-{n}{Path(name).suffix}"
            n += 1
        shutil.copyfile(src, dest)
        discard_upload(src)  # the job reads the staged copy
        if dest_dir.name == "zips":
            paths.append(ws.relative(dest))
        else:
            has_loose = True
    if has_loose:
        paths.insert(0, ws.relative(root / "upload"))
    return paths, ws.relative(root)


def import_summary(result: dict) -> str:
    """What an import job did, file by file: the counts, then each refused or skipped file."""
    text = f"\n\nimported {len(result.get('imported', []))}, duplicates {len(result.get('duplicates', []))}"
    text += "".join(f"\n- refused **{e['file']}**: {e['error']}" for e in result.get("errors", []))
    text += "".join(f"\n- skipped **{e['file']}**: {e['reason']}" for e in result.get("skipped", []))
    return text


def build(ws: Workspace, ds: gr.Dropdown, job_id: gr.State, job_seen: gr.State) -> gr.Markdown:
    """The upload panel and its Import button; returns the status line the import job reports to."""
    with gr.Accordion("Upload recordings (many files or zips; LJSpeech, wav|text, VCTK, Common Voice layouts)", open=True):
        upload = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", label="Audio files or zips",
                         elem_id="ds-upload")
        with gr.Row():
            source = gr.Textbox(label="Source", placeholder="where it came from", elem_id="ds-source")
            licence = gr.Textbox(label="Licence / consent note", elem_id="ds-licence")
            speaker = gr.Textbox(label="Speaker label", elem_id="ds-speaker")
            provenance = gr.Radio(["human", "ai"], value="human", label="Provenance (human recording or AI-generated)",
                                  elem_id="ds-provenance")
        import_btn = gr.Button("Import", variant="primary", elem_id="ds-import")
    status = gr.Markdown(elem_id="ds-status")

    def on_import(name, files, src, lic, spk, prov):
        from workers.dispatch import submit

        if not name:
            raise gr.Error("pick or create a dataset first")
        if not files:
            raise gr.Error("choose files or zips to upload first")
        from studio.ui.uploads import uploaded_files

        files = uploaded_files(files)  # never a server path sent in place of an upload
        with page_errors():
            paths, staged_root = stage_uploads(ws, files)
            labels = {p: ("upload" if p.endswith("/upload") else Path(p).name) for p in paths}
            job = submit(ws, "import", {"dataset": name, "paths": paths, "labels": labels, "staged": True,
                                        "cleanup": True, "source": src or "", "licence": lic or "",
                                        "speaker": spk or "", "provenance": prov or "human"})
        return job["id"], None, f"Import queued as job {job['id']}…", None

    import_btn.click(on_import, [ds, upload, source, licence, speaker, provenance], [job_id, job_seen, status, upload])
    return status
