"""Load the pipeline config: YAML overlays merged in order, then --set overrides, then ${ENV} values.

The keys themselves (types, defaults, meanings) are declared in pipeline/config/schema.py.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.schema import PipelineConfig, SplitConfig
from pipeline.errors import ConfigError

BASE_CONFIG = Path(__file__).resolve().parents[2] / "conf" / "base.yaml"
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _merge(base: dict, overlay: dict, origin: str, provenance: dict[str, str], prefix: str = "") -> dict:
    """Deep-merge overlay into base (lists replace), recording which file set each dotted key."""
    out = dict(base)
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origin, provenance, dotted + ".")
        else:
            out[key] = copy.deepcopy(value)
            provenance[dotted] = origin
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist. Fix: pass an existing file to --conf")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}. Fix: correct the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r} must look like key.path=value, e.g. --set train.epochs=3")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {item!r} has an empty key segment. Fix: e.g. --set train.epochs=3")
    return keys, yaml.safe_load(raw) if raw.strip() else ""


def _interpolate(value: Any, where: str) -> Any:
    """Replace ${VAR} / ${VAR:-default} in strings so secrets stay out of committed files."""
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable ${{{name}}} is not set. "
            f"Fix: export {name}=... (or write ${{{name}:-default}})"
        )

    return _ENV_PATTERN.sub(replace, value)


def _describe(errors: Iterable[dict], provenance: dict[str, str]) -> str:
    lines = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        loc = loc.replace("schema_", "schema")
        origin = _origin_of(loc, provenance)
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        msg = err["msg"].replace("Value error, ", "")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; Fix: remove it or check its spelling against conf/base.yaml"
        lines.append(f"{loc or '<top level>'}{shown}: {msg} [set in {origin}]")
    return "invalid config:\n  " + "\n  ".join(lines)


def _origin_of(loc: str, provenance: dict[str, str]) -> str:
    parts = loc.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in provenance:
            return provenance[key]
    return "defaults"


def load_config(
    paths: Sequence[str | Path] = (), overrides: Sequence[str] = (), include_base: bool = True
) -> PipelineConfig:
    """Merge base.yaml, each overlay in order, then --set overrides, then ${ENV} values.

    Raises:
        ConfigError: naming key, file, bad value and fix for unknown keys, wrong types, contradictions.
    """
    provenance: dict[str, str] = {}
    merged: dict = {}
    files = ([BASE_CONFIG] if include_base else []) + [Path(p) for p in paths]
    for path in files:
        merged = _merge(merged, _read_yaml(path), str(path), provenance)
    for item in overrides:
        keys, value = _parse_override(item)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        merged = _merge(merged, nested, f"--set {item}", provenance)
    return _validated(_interpolate(merged, ""), provenance)


def _validated(merged: dict, provenance: dict[str, str]) -> PipelineConfig:
    """Types and bounds (pydantic), then the checks across sections; errors name the key and where it was set."""
    try:
        config = PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), provenance)) from None
    _check_cross_field(config)
    return config


def _check_cross_field(config: PipelineConfig) -> None:
    """Contradictions that span sections (each message names both settings and the fix)."""
    if config.data.sources:
        _check_split(config.split)
    names = [s.name for s in config.data.sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"data.sources: duplicate source names {names}. Fix: give each source a unique name")
    primaries = [s.name for s in config.data.sources if s.primary]
    if len(config.data.sources) > 1 and len(primaries) != 1:
        raise ConfigError(
            f"data.sources: exactly one source must have primary: true when several are declared "
            f"(found {primaries or 'none'}). Fix: mark the table whose rows you predict on as primary"
        )
    if len(config.data.sources) > 1 and not config.data.query:
        raise ConfigError("data.query is empty but several sources are declared. Fix: write the SQL that joins them")
    task = config.features.label.task if config.features.label else None
    monitor = config.train.monitor
    classification_metrics = {"val_auc", "val_accuracy", "val_loss"}
    regression_metrics = {"val_rmse", "val_mae", "val_loss"}
    allowed = regression_metrics if task == "regression" else classification_metrics
    if task == "multiclass":
        allowed = {"val_accuracy", "val_loss"}
    if task and monitor is not None and monitor not in allowed:
        raise ConfigError(
            f"train.monitor={monitor!r} is not a metric of a {task} task. Fix: use one of {sorted(allowed)}"
        )
    threshold = config.train.decision_threshold
    if not isinstance(threshold, str) and not 0 < threshold < 1:
        raise ConfigError(
            f"train.decision_threshold={threshold} is not a probability. Fix: use a value in (0, 1) or max_f1"
        )
    label = config.features.label
    if label is not None and label.positive is not None and label.task != "binary":
        raise ConfigError(
            f"features.label.positive={label.positive!r} is set but features.label.task={label.task}. "
            "Fix: remove positive, or set task: binary"
        )
    if config.train.model.type == "linear" and config.features.categorical and config.train.model.embedding_dim:
        raise ConfigError(
            "train.model.embedding_dim is set but train.model.type=linear uses one-hot weights. "
            "Fix: remove embedding_dim or use type: mlp"
        )


def _check_split(split: SplitConfig) -> None:
    if split.method == "hash" and not split.key:
        raise ConfigError(
            "split.key is empty but split.method=hash. Fix: set split.key to a column that identifies a row"
        )
    if split.method == "hash" and split.val_fraction + split.test_fraction >= 1:
        raise ConfigError(
            f"split.val_fraction + split.test_fraction = {split.val_fraction + split.test_fraction} leaves no "
            "training rows. Fix: make their sum < 1"
        )
    if split.method == "time" and not (split.column and split.train and split.val and split.test):
        raise ConfigError(
            "split.method=time needs split.column and split.train/val/test as [start, end) ISO dates. Fix: set all four"
        )


def dump_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def nested_dict(values: dict[str, Any]) -> dict:
    """{"train.model.hidden": [8]} -> {"train": {"model": {"hidden": [8]}}} (a YAML overlay of dotted keys)."""
    out: dict = {}
    for dotted, value in values.items():
        node = out
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def with_values(config: PipelineConfig, values: dict[str, Any], origin: str) -> PipelineConfig:
    """The config with dotted keys set (a tuning trial's parameters), validated like a loaded one.

    Raises:
        ConfigError: naming the key, `origin` (where the values came from), the bad value and the fix.
    """
    provenance: dict[str, str] = {}
    merged = _merge(copy.deepcopy(config.to_dict()), nested_dict(values), origin, provenance)
    return _validated(merged, provenance)
