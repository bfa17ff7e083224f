"""The house's structure: the import graph of models/, studio/ and workers/ has no loop and no
arrow running up, every job kind resolves, and the torch-free layer (models' shared definitions,
every studio module, the dispatch path the web process uses) never loads torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "studio", "workers")
# (importer prefix, imported prefix): arrows that run up. `studio.core` is studio's own core: not
# ui/, not cli/, and not studio.server, the web entry point that mounts the UI and starts the
# embedded worker (it stands with the CLI, at the top).
ENTRY_POINTS = ("studio.ui", "studio.cli", "studio.server")
FORBIDDEN = [
    ("models", "studio"), ("models", "workers"),
    ("studio.core", "studio.ui"), ("studio.core", "studio.cli"), ("studio.core", "workers"),
    ("studio.ui", "studio.cli"),
    ("workers", "studio.ui"), ("workers", "studio.cli"),
]
ALLOWED: set[tuple[str, str]] = set()  # (importer, imported) edges tolerated for now: none
TORCH_FREE_LAYER = ("models.errors", "models.names", "models.files", "models.training_config", "models.constants",
                    "models.catalog")


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module `name` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import studio.ui.app` names a module; trim attributes
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _room(module: str) -> str:
    if module == "studio" or (module.startswith("studio.") and not any(_within(module, e) for e in ENTRY_POINTS)):
        return "studio.core"
    return module


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _upward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for importer, targets in graph.items():
        for target in targets:
            for src, dst in FORBIDDEN:
                src_ok = _room(importer) == "studio.core" if src == "studio.core" else _within(importer, src)
                if src_ok and _within(target, dst) and (importer, target) not in ALLOWED:
                    bad.append(f"{importer} -> {target}")
    return sorted(set(bad))


def test_the_import_graph_has_no_loop_and_no_upward_arrow():
    graph = _graph()
    assert "models.generation" in graph and "workers.queue" in graph  # the walk found the packages
    assert "workers.runner" in graph["workers.queue"]  # and reads function-local imports as well
    assert _cycles(graph) == [], "modules that import each other (module-level or inside a function)"
    assert _upward(graph) == [], "imports that run up: models < studio < studio.ui < studio.cli; workers < ui/cli"


def test_the_checks_see_a_loop_and_an_upward_arrow():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _upward({"models.x": {"studio.jobs"}, "studio.jobs": {"studio.ui.app", "workers.queue"},
                    "studio.ui.app": {"studio.cli"}, "studio.ui.live": {"studio.jobs"}, "studio.server": {"studio.ui.app"},
                    "workers.queue": {"studio.ui.app"}}) == \
        ["models.x -> studio.jobs", "studio.jobs -> studio.ui.app", "studio.jobs -> workers.queue",
         "studio.ui.app -> studio.cli", "workers.queue -> studio.ui.app"]


def test_every_job_kind_resolves_and_every_submitted_kind_is_in_the_table():
    from workers.kinds import KINDS, handler_for

    for kind in KINDS:
        assert callable(handler_for(kind)), kind
    submitted = set()
    for path in (p for pkg in ("studio", "workers") for p in (REPO / pkg).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                    in ("submit", "create_job") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                submitted.add((node.args[1].value, path.relative_to(REPO).as_posix()))
    assert len(submitted) > 10  # the scan finds the UI's and the CLI's submissions
    assert [s for s in submitted if s[0] not in KINDS] == []


def test_the_torch_free_layer_and_the_web_modules_never_load_torch():
    web = sorted(m for m, p in _modules().items()
                 if m.startswith("studio") and ".migrations" not in m and not m.endswith("__main__"))
    code = "\n".join([
        "import importlib, sys",
        *[f"import {m}" for m in TORCH_FREE_LAYER],
        "import models.catalog as c; c.state('small'); c.missing_line('small'); c.builtin_voices('small')",
        "from models.training_config import config_from_preset; config_from_preset('quality', max_steps=3).lora()",
        "assert 'torch' not in sys.modules, 'the torch-free layer loaded torch'",
        f"for m in {web + ['workers.dispatch']!r}: importlib.import_module(m)",
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", "a studio module loaded the model stack"
