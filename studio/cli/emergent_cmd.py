"""emergent list|add|star|tag|note|export: the emergent-behaviour log."""
from __future__ import annotations

from pathlib import Path

import click

from studio.cli import emit, json_option, pass_ctx


def register(main: click.Group) -> None:
    main.add_command(emergent_group)


def _entry_line(e: dict) -> str:
    stars = "*" * e["stars"]
    what = f"output {e['output_id']}" if e["output_id"] else (f"generation {e['generation_id']}" if e["generation_id"]
                                                              else e["audio_path"] or "-")
    return (f"{e['id']:>4}  {e['source']:<6} {stars:<5} {what}  [{', '.join(e['tags'])}]  "
            f"{e['flag_reason'] or e['notes'] or ''}")


@click.group("emergent")
def emergent_group() -> None:
    """The emergent-behaviour log: outliers flagged automatically, and clips added by hand."""


def _filters(f):
    f = click.option("--tag")(f)
    f = click.option("--min-stars", type=int, default=0)(f)
    f = click.option("--source", type=click.Choice(["auto", "manual"]))(f)
    f = click.option("--experiment")(f)
    f = click.option("--sweep", "sweep_id", type=int)(f)
    return f


def _list(ctx, tag, min_stars, source, experiment, sweep_id):
    from studio.experiments.emergent import list_entries
    from studio.experiments.records import experiment_id

    return list_entries(ctx.ws, tag=tag, min_stars=min_stars, source=source,
                        experiment_id=experiment_id(ctx.ws, experiment), sweep_id=sweep_id)


@emergent_group.command("list")
@_filters
@json_option
@pass_ctx
def emergent_list(ctx, tag, min_stars, source, experiment, sweep_id, as_json):
    rows = _list(ctx, tag, min_stars, source, experiment, sweep_id)
    emit(rows, as_json, lambda rs: "\n".join(_entry_line(e) for e in rs) or "the log is empty")


@emergent_group.command("add", help="Add a generation, sweep output or audio file to the log by hand.")
@click.option("--output", "output_id", type=int, help="A sweep/eval output id.")
@click.option("--generation", "generation_id", type=int, help="A generation from the history.")
@click.option("--audio", type=click.Path(dir_okay=False), help="Any audio file (copied into the workspace).")
@click.option("--experiment")
@click.option("--tag", "tags", multiple=True)
@click.option("--notes", default="")
@click.option("--stars", type=int, default=0)
@json_option
@pass_ctx
def emergent_add(ctx, output_id, generation_id, audio, experiment, tags, notes, stars, as_json):
    from studio.experiments.emergent import add_entry
    from studio.experiments.records import experiment_id

    entry = add_entry(ctx.ws, output_id=output_id, generation_id=generation_id, audio=audio,
                      experiment_id=experiment_id(ctx.ws, experiment), tags=list(tags), notes=notes, stars=stars)
    emit(entry, as_json, _entry_line)


@emergent_group.command("star")
@click.argument("entry_id", type=int)
@click.argument("stars", type=int)
@json_option
@pass_ctx
def emergent_star(ctx, entry_id, stars, as_json):
    from studio.experiments.emergent import update_entry

    emit(update_entry(ctx.ws, entry_id, stars=stars), as_json, _entry_line)


@emergent_group.command("tag", help="Set an entry's tags.")
@click.argument("entry_id", type=int)
@click.option("--add", "add", multiple=True)
@click.option("--remove", "remove", multiple=True)
@json_option
@pass_ctx
def emergent_tag(ctx, entry_id, add, remove, as_json):
    from studio.experiments.emergent import update_entry

    emit(update_entry(ctx.ws, entry_id, add_tags=list(add), remove_tags=list(remove)), as_json, _entry_line)


@emergent_group.command("note", help="Set an entry's notes.")
@click.argument("entry_id", type=int)
@click.argument("notes")
@json_option
@pass_ctx
def emergent_note(ctx, entry_id, notes, as_json):
    from studio.experiments.emergent import update_entry

    emit(update_entry(ctx.ws, entry_id, notes=notes), as_json, _entry_line)


@emergent_group.command("export")
@click.argument("target", type=click.Path(dir_okay=False))
@_filters
@json_option
@pass_ctx
def emergent_export(ctx, target, tag, min_stars, source, experiment, sweep_id, as_json):
    """A zip of the (filtered) entries' audio with a JSON manifest of how to reproduce each."""
    from studio.experiments.emergent import export_entries

    rows = _list(ctx, tag, min_stars, source, experiment, sweep_id)
    path = export_entries(ctx.ws, rows, Path(target))
    emit({"export": str(path), "entries": len(rows)}, as_json,
         lambda d: f"exported {d['entries']} entries to {d['export']}")
