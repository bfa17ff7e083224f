"""experiment create|list|show|link|conclude: experiment records and their pages."""
from __future__ import annotations

import click

from studio.cli import emit, json_option, pass_ctx
from studio.experiments import arms as arm_specs
from studio.experiments import requests


def register(main: click.Group) -> None:
    main.add_command(experiment_group)


def _experiment_text(e: dict) -> str:
    lines = [f"experiment {e['id']}: {e['name']} ({e['status']})", f"hypothesis: {e['hypothesis'] or '-'}",
             f"dataset: {e['dataset'] or '-'}", "arms: " + (", ".join(f"{a['name']} ({a['kind']})" for a in e["arms"])
                                                          or "-"),
             f"prompts: {len(e['prompts'])}"]
    for s in e.get("sweeps", []):
        summary = s.get("summary") or {}
        lines.append(f"  {s['mode']} {s['id']} ({s['status']}): {summary.get('n_outputs', 0)} outputs, "
                     f"{len(s['plots'])} plots")
        for metric, per_arm in (summary.get("by_arm") or {}).items():
            if metric in ("wer", "speaker_similarity", "f0_corr", "music_likeness", "duration_s"):
                cells = ", ".join(f"{arm}={v['mean']:.3g}" for arm, v in per_arm.items() if v.get("mean") is not None)
                if cells:
                    lines.append(f"    {metric}: {cells}")
    for r in e.get("listening", []):
        lines.append(f"  listening {r['session_id']} {r.get('name', '')}: {r.get('n_votes', 0)} votes"
                     + (f" ({r['error']})" if r.get("error") else ""))
    lines.append(f"  emergent entries: {len(e.get('emergent', []))}")
    lines.append(f"conclusion: {e['conclusion'] or '-'}")
    return "\n".join(lines)


@click.group("experiment")
def experiment_group() -> None:
    """Experiment records: hypothesis, dataset, arms, prompts, results and a conclusion."""


@experiment_group.command("create")
@click.argument("name")
@click.option("--hypothesis", default="")
@click.option("--dataset", help="The dataset (name or id) the arms were trained or conditioned on.")
@click.option("--arm", "arms", multiple=True, help="name=...,kind=base|voice_prompt|finetune|adapter_scale|"
              "adapter_mix[,adapter=PATH:SCALE+PATH:SCALE][,voice=PATH][,model=tiny][,speaker=A:0.7,B:0.3]"
              "[,label=NAME=VALUE], or JSON.")
@click.option("--prompt", "prompts", multiple=True, help="A test prompt (repeat for several).")
@click.option("--prompts-file", type=click.Path(dir_okay=False), help="One test prompt per line.")
@json_option
@pass_ctx
def experiment_create(ctx, name, hypothesis, dataset, arms, prompts, prompts_file, as_json):
    from studio.experiments.records import create_experiment

    exp = create_experiment(ctx.ws, name=name, hypothesis=hypothesis, dataset=dataset,
                            arms=[arm_specs.parse_arm(a, ctx.ws) for a in arms],
                            prompts=requests.texts(prompts, prompts_file))
    emit(exp, as_json, _experiment_text)


@experiment_group.command("list", help="Experiments with their hypotheses and status.")
@json_option
@pass_ctx
def experiment_list(ctx, as_json):
    from studio.experiments.records import list_experiments

    rows = list_experiments(ctx.ws)
    emit(rows, as_json, lambda rs: "\n".join(f"{e['id']:>4}  {e['status']:<9} {e['name']}" for e in rs)
         or "no experiments")


@experiment_group.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def experiment_show(ctx, ref, as_json):
    """The experiment's page: record, sweeps and metrics, listening results, emergent entries."""
    from studio.experiments.records import page

    emit(page(ctx.ws, ref), as_json, _experiment_text)


@experiment_group.command("link")
@click.argument("ref")
@click.option("--listening", "sessions", multiple=True, type=int, required=True, help="Listening session id.")
@json_option
@pass_ctx
def experiment_link(ctx, ref, sessions, as_json):
    """Attach listening sessions to an experiment (their results appear on its page)."""
    from studio.experiments.records import update_experiment

    emit(update_experiment(ctx.ws, ref, add_listening=list(sessions)), as_json, _experiment_text)


@experiment_group.command("conclude", help="Write the experiment's conclusion.")
@click.argument("ref")
@click.argument("conclusion")
@json_option
@pass_ctx
def experiment_conclude(ctx, ref, conclusion, as_json):
    from studio.experiments.records import conclude

    emit(conclude(ctx.ws, ref, conclusion), as_json, _experiment_text)
