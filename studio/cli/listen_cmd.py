"""listen create|list|show|raters|results|exclude|close: blind listening sessions."""
from __future__ import annotations

import json
from pathlib import Path

import click

from studio.cli import emit, json_option, pass_ctx
from studio.errors import UserError
from studio.experiments import arms as arm_specs


def register(main: click.Group) -> None:
    main.add_command(listen)


def _named_folder(value: str, flag: str) -> tuple[str, str]:
    name, sep, folder = value.partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise UserError(f"{flag} {value!r}: expected NAME=FOLDER")
    return name.strip(), folder.strip()


def _session_line(d: dict) -> str:
    return f"{d['id']:>4}  {d['name']:<30} {d['test_type']:<4} {d['status']:<7} raters {d['raters']:<3} votes {d['votes']}"


def _session_detail(d: dict) -> str:
    lines = [f"session {d['id']}: {d['name']} ({d['test_type']}, {d['status']})", f"question: {d['question']}",
             f"items {d['n_items']}, trials per rater {d['trials_per_rater']}, gold/trap per rater {d['n_gold']}, "
             f"loudness {d['target_lufs']} LUFS",
             "systems: " + ", ".join(f"{s['name']}{' (hidden reference)' if s['kind'] == 'reference' else ''}"
                                     for s in d["systems"] if s["kind"] != "trap")]
    lines += [f"note: {n}" for n in d["notes"]]
    lines += [f"  {r['label']}: {r['votes']}/{r['trials']} votes{' (excluded)' if r['excluded'] else ''}"
              for r in d.get("raters", [])]
    return "\n".join(lines)


@click.group("listen")
def listen() -> None:
    """Blind A/B and MOS listening sessions: create, hand out rater links, read results."""


@listen.command("create")
@click.option("--name", required=True, help="What the owner calls the session (raters never see it).")
@click.option("--system", "systems", multiple=True, metavar="NAME=FOLDER",
              help="A system: a folder of audio files named by item (stems match across systems). Repeat.")
@click.option("--reference", "references", multiple=True, metavar="NAME=FOLDER",
              help="Real recordings as a hidden reference, shown blind like any system.")
@click.option("--generated", "generated", multiple=True, metavar="NAME=SPEC",
              help="A system the model core generates for --prompt texts, in the arm syntax "
                   "(mix=model=small,adapter=cast-voices:1,voice=alice,speaker=alice:0.5,bob:0.5,label=accent=0.3) "
                   'or as the generate job\'s parameters in JSON (\'prompt={"model": "small", "voice": "alice"}\').')
@click.option("--prompt", "prompts", multiple=True, help="A text to generate (one item each). Repeat.")
@click.option("--generation-seed", default=0, show_default=True, type=int, help="Seed of every generated stimulus.")
@click.option("--type", "test_type", type=click.Choice(["ab", "mos"]), default="ab", show_default=True)
@click.option("--question", default="natural", show_default=True,
              help="A/B question: natural, similar, interesting, or your own sentence.")
@click.option("--voice-label", help="For --question similar: how raters are told the voice (e.g. 'the reference speaker').")
@click.option("--voice-reference", type=click.Path(dir_okay=False, exists=True),
              help="A recording of the voice, playable on every trial.")
@click.option("--no-preference", is_flag=True, help="Offer a 'no preference' answer in A/B.")
@click.option("--trials", "trials_per_rater", type=int,
              help="Trials per rater (default: every distinct trial, up to 20; more than the items allow is refused).")
@click.option("--gold", "n_gold", default=0, show_default=True, type=int, help="Gold/trap trials per rater.")
@click.option("--seed", type=int, help="Seed of the trial pool (default: random, stored).")
@click.option("--lufs", "target_lufs", default=-23.0, show_default=True, type=float,
              help="Common loudness of all stimuli (lowered if a stimulus would clip).")
@click.option("--no-wait", is_flag=True, help="Return at once with the job id instead of waiting.")
@json_option
@pass_ctx
def create(ctx, name, systems, references, generated, prompts, generation_seed, test_type, question, voice_label, voice_reference, no_preference,
           trials_per_rater, n_gold, seed, target_lufs, no_wait, as_json):
    """Prepare stimuli (a listening_stimuli job) and create a session."""
    from studio.listening.sessions import get_session
    from workers.dispatch import submit

    specs = [{"name": n, "folder": str(Path(f).resolve()), "reference": False}
             for n, f in (_named_folder(v, "--system") for v in systems)]
    specs += [{"name": n, "folder": str(Path(f).resolve()), "reference": True}
              for n, f in (_named_folder(v, "--reference") for v in references)]
    for value in generated:
        gname, gspec = _named_folder(value, "--generated")
        if not gspec.lstrip().startswith("{"):
            spec = arm_specs.generation_spec(gspec, ctx.ws, f"--generated {gname}")
        else:
            try:
                spec = json.loads(gspec)
            except ValueError as exc:
                raise UserError(f"--generated {gname}: the parameters are not JSON ({exc})") from None
        specs.append({"name": gname, "generation": spec})
    params = {"name": name, "systems": specs, "prompts": list(prompts), "generation_seed": generation_seed, "test_type": test_type, "question": question,
              "voice_label": voice_label, "allow_no_preference": no_preference, "trials_per_rater": trials_per_rater,
              "n_gold": n_gold, "seed": seed, "target_lufs": target_lufs,
              "voice_reference": str(Path(voice_reference).resolve()) if voice_reference else None}
    from studio.listening.sessions import resolve_question

    resolve_question(test_type, question, voice_label)  # a bad question fails before a job is queued
    job = submit(ctx.ws, "listening_stimuli", params, wait=not no_wait)
    if no_wait:
        emit(job, as_json, lambda j: f"job {j['id']} queued: listening stimuli for {name!r}")
        return
    if job["status"] != "succeeded":
        raise UserError(job.get("error") or f"listening_stimuli job {job['id']} {job['status']}")
    emit(get_session(ctx.ws, job["result"]["session_id"]), as_json, _session_detail)


@listen.command("list", help="Listening sessions with their vote counts.")
@json_option
@pass_ctx
def list_(ctx, as_json):
    from studio.listening.sessions import list_sessions

    emit(list_sessions(ctx.ws), as_json, lambda rows: "\n".join(_session_line(r) for r in rows) or "no sessions")


@listen.command("show", help="A session: systems, items, raters and progress.")
@click.argument("session_id", type=int)
@json_option
@pass_ctx
def show(ctx, session_id, as_json):
    from studio.listening.sessions import get_session

    emit(get_session(ctx.ws, session_id), as_json, _session_detail)


@listen.command("raters")
@click.argument("session_id", type=int)
@click.option("--count", default=1, show_default=True, type=int, help="How many rater links to make.")
@click.option("--expires-days", default=14.0, show_default=True, type=float)
@click.option("--base-url", envvar="BARK_STUDIO_PUBLIC_URL",
              help="Address raters reach the studio at (default: $BARK_STUDIO_PUBLIC_URL, else the address "
                   "`bark-studio serve` answers on).")
@json_option
@pass_ctx
def raters(ctx, session_id, count, expires_days, base_url, as_json):
    """Make rater links (each shown once; only a hash of its token is stored)."""
    from studio.listening.sessions import add_raters

    links = add_raters(ctx.ws, session_id, count, expires_days=expires_days, base_url=base_url or None)
    emit(links, as_json, lambda ls: "\n".join(f"{x['label']}: {x['link']}" for x in ls))


@listen.command("results")
@click.argument("session_id", type=int)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write every vote to this CSV file.")
@click.option("--exclude-flagged", is_flag=True, help="Leave out raters flagged by screening.")
@click.option("--exclude", "exclude", multiple=True, type=int, metavar="RATER_ID", help="Leave out this rater. Repeat.")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True, type=int, help="Bootstrap replicates.")
@click.option("--no-plots", is_flag=True)
@json_option
@pass_ctx
def results(ctx, session_id, csv_path, exclude_flagged, exclude, n_boot, no_plots, as_json):
    """MOS or A/B statistics, rater screening and plots."""
    from studio.listening.results import export_csv, session_results, summary_text

    res = session_results(ctx.ws, session_id, exclude_flagged=exclude_flagged, exclude=list(exclude),
                          n_boot=n_boot, plots=not no_plots)
    if csv_path:
        res["csv"] = str(export_csv(ctx.ws, session_id, Path(csv_path)))
    emit(res, as_json, summary_text)


@listen.command("exclude")
@click.argument("session_id", type=int)
@click.argument("rater_ids", nargs=-1, type=int, required=True)
@click.option("--undo", is_flag=True, help="Include these raters again.")
@json_option
@pass_ctx
def exclude_cmd(ctx, session_id, rater_ids, undo, as_json):
    """Exclude raters from results (stored; votes are kept)."""
    from studio.listening.sessions import get_session, set_excluded

    set_excluded(ctx.ws, session_id, list(rater_ids), excluded=not undo)
    emit(get_session(ctx.ws, session_id), as_json, _session_detail)


@listen.command("close")
@click.argument("session_id", type=int)
@json_option
@pass_ctx
def close(ctx, session_id, as_json):
    """Close a session: its links accept no more votes."""
    from studio.listening.sessions import close_session

    emit(close_session(ctx.ws, session_id), as_json, _session_detail)
