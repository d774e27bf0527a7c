"""The layout's promises, checked on the code itself: where each part may import from, who spells paths,
who starts MLflow runs, and that every training setting reaches the ranks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config.schema import TrainConfig
from pipeline.launch.planning import DRIVER_ONLY, build_plan, configured_settings, resolved_model
from pipeline.worker.plan import TrainPlan
from tests.helpers import ROOT, write_features

PACKAGE = ROOT / "pipeline"
FORBIDDEN_IN_RANKS = (
    "pyspark",
    "yaml",
    "pydantic",
    "pipeline.config",
    "pipeline.data",
    "pipeline.tracking",
    "pipeline.launch",
    "pipeline.stages",
)


def _modules(folder: str) -> list[str]:
    return sorted(
        f"pipeline.{folder}.{p.stem}" if p.stem != "__init__" else f"pipeline.{folder}"
        for p in (PACKAGE / folder).glob("*.py")
    )


def _imported_after(module: str) -> set[str]:
    """Top-level module names loaded by importing `module` in a fresh interpreter."""
    script = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module", [*_modules("worker"), "pipeline.worker.epoch_logger", "pipeline.worker.trial_pruner"]
)
def test_rank_side_modules_import_no_spark_config_or_tracking(module):
    loaded = _imported_after(module)
    assert not [m for m in FORBIDDEN_IN_RANKS if m in loaded], f"{module} pulls in {sorted(loaded)}"


# File access on the rank side goes through pipeline/storage (a configured path may be s3://...). user_code.py is the
# exception: it unpacks the shipped code archive into the rank's own local temporary folder, never a configured path.
_LOCAL_FILE_IO = re.compile(r"\bopen\(|\bpathlib\b|\bos\.path\b|\bos\.replace\b|\bshutil\b|\bPath\(")
_TORCH_FILE_IO = re.compile(r"torch\.(?:save|load)\((?![^)]*(?:BytesIO|buffer))")


@pytest.mark.parametrize("path", sorted(p for p in (PACKAGE / "worker").glob("*.py") if p.name != "user_code.py"))
def test_rank_side_file_access_goes_through_the_storage_layer(path):
    code = path.read_text()
    found = _LOCAL_FILE_IO.findall(code) + _TORCH_FILE_IO.findall(code)
    assert not found, f"{path.name} touches files directly ({found}); use pipeline.storage.files (any URI)"


@pytest.mark.parametrize("module", _modules("model"))
def test_model_modules_import_only_the_model_package_of_the_pipeline(module):
    loaded = _imported_after(module)
    ours = {m for m in loaded if m.startswith("pipeline.")}
    # (mlflow itself imports pyspark when it is installed; the registered-model test blocks pyspark outright)
    assert ours <= {m for m in ours if m.startswith("pipeline.model")}, ours  # so no pipeline.config either


def _code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants in code (docstrings excluded), with their line numbers."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


PATH_LITERAL = re.compile(
    r"feature_spec\.json|quality_report\.json|\.staging-|features_by_split|date="
    r"|(^|/)(prepared|clean|quarantine|features|predictions|score_quarantine|checkpoints)(/|$)"
)


def test_only_the_layout_module_spells_output_paths():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "layout.py" and path.parent == PACKAGE:
            continue
        for line, text in _code_strings(ast.parse(path.read_text())):
            if "/" in text and PATH_LITERAL.search(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not offenders, "paths spelled outside pipeline/layout.py:\n" + "\n".join(offenders)


def test_only_the_tracked_stage_starts_or_ends_runs():
    calls = re.compile(r"\b(runs\.start_run|runs\.end_run|mlflow\.start_run|mlflow\.end_run)\(")
    found = {
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if calls.search(path.read_text()) and path.relative_to(ROOT).as_posix() != "pipeline/tracking/runs.py"
    }
    assert found == {"pipeline/tracking/tracked.py"}


def test_every_training_setting_reaches_the_plan_or_is_driver_only():
    config_fields = set(TrainConfig.model_fields)
    plan_fields = set(TrainPlan.__dataclass_fields__)
    assert not DRIVER_ONLY & plan_fields
    assert config_fields == (config_fields & plan_fields) | DRIVER_ONLY


def test_plan_carries_each_setting_with_its_value(tmp_path):
    from pipeline.config.load import load_config
    from pipeline.layout import Layout
    from pipeline.model.spec import FeatureSpec, LabelSpec, NumericStats

    changed = [
        "train.epochs=4", "train.batch_size=32", "train.lr=0.05", "train.scale_lr_by_workers=false",
        "train.warmup_epochs=0.5", "train.weight_decay=0.01", "train.grad_clip=2.0",
        "train.backward_passes_per_step=3", "train.fp16_allreduce=true", "train.patience=9",
        "train.grouped_allreduce=true",
        "train.monitor=val_loss", "train.threads_per_worker=3", "train.shuffle_buffer_rows=999",
        "train.max_steps_per_epoch=17", "train.seed=123", "train.model.hidden=[8]",
        "train.augment.flip=true", "train.augment.crop_padding=2", "train.precision=bf16",
    ]  # fmt: skip
    config = load_config([], [f"work_dir={tmp_path}", *changed])
    spec = FeatureSpec(  # one input: build_plan checks the model on an example batch
        input_schema={"x": "double", "y": "double"},
        numeric=(NumericStats("x", 0, 0, 1, missing_indicator=False),),
        label=LabelSpec("y", "binary"),
    )
    layout = Layout.from_config(config)
    write_features(Path(layout.prepared.features("train")), [1500, 1500])
    plan = build_plan(config, spec, layout, "run-1")
    for name in set(TrainConfig.model_fields) - DRIVER_ONLY:
        expected = getattr(config.train, name)
        expected = resolved_model(expected) if name == "model" else expected
        expected = expected.model_dump() if name == "augment" else expected
        assert getattr(plan, name) == expected, name
    assert plan.checkpoint_dir == f"{tmp_path}/checkpoints/run-1"


def test_a_new_training_setting_cannot_be_silently_forgotten():
    class WithNewSetting(TrainConfig):
        label_smoothing: float = 0.1

    with pytest.raises(TypeError, match="label_smoothing"):
        TrainPlan(layout=None, run_id="r", spec=None, **configured_settings(WithNewSetting()))


def _package_imports() -> dict[str, set[str]]:
    """pipeline's top-level parts (folders and modules) -> the other parts they import, at run time."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        tree = ast.parse(path.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and id(node) not in typing_only:
                names = node.module.split(".")
                if names[0] != "pipeline":
                    continue
                targets = [names[1]] if len(names) > 1 else [alias.name for alias in node.names]
                graph.setdefault(part, set()).update(t for t in targets if t != part)
    return graph


def test_the_packages_import_each_other_without_cycles():
    graph = _package_imports()
    visiting, done = [], set()

    def visit(part: str) -> None:
        if part in visiting:
            pytest.fail("import cycle: " + " -> ".join([*visiting[visiting.index(part) :], part]))
        if part in done:
            return
        visiting.append(part)
        for target in sorted(graph.get(part, ())):
            visit(target)
        visiting.pop()
        done.add(part)

    for part in sorted(graph):
        visit(part)


def test_only_the_cli_imports_the_stages():
    """The command line (cli and its scheduled-monitoring commands) drives the stages; nothing else does."""
    importers = {part for part, targets in _package_imports().items() if "stages" in targets}
    assert importers == {"cli", "monitor_commands"}


def test_module_names_are_distinct():
    """A module's name alone says which one it is (no two plan.py in different folders)."""
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            seen.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}


# A configured path may be a URI (s3a://...), which pathlib and open() would silently treat as a local folder:
# outside the storage layer no driver module opens one of the layout's or config's paths directly.
_CONFIGURED_PATH_IO = re.compile(r"(?:\bPath|\bopen)\(\s*(?:layout|config|self\.layout|staging|prepared)\b")


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.rglob("*.py") if "storage" not in p.parts and p.name != "layout.py")
)
def test_no_module_opens_a_configured_path_outside_the_storage_layer(path):
    found = _CONFIGURED_PATH_IO.findall(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} opens a configured path directly: use pipeline.storage"
