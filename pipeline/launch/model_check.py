"""Pre-launch check of the model on the driver: a user's mistake is a one-line ConfigError in seconds, not a
stack trace from inside two Horovod ranks minutes later.

Checks, in order, each naming the setting and the fix: train.model.code exists and is importable by name;
train.model.params are plain YAML values; the factory imports, takes (inputs, params) and returns an nn.Module
whose state_dict holds only tensors (the registered weights load with weights_only=True); one forward pass of a
small batch built from the feature spec works and returns logits of the task's shape; train.loss imports, takes
(logits, target) and returns a scalar that back-propagates. Runs for the built-in models too (one code path).
"""

from __future__ import annotations

import inspect
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.config.schema import TrainConfig
from pipeline.errors import ConfigError
from pipeline.model.factory import resolve
from pipeline.model.inputs import ModelInputs, describe_batch, example_batch, model_inputs
from pipeline.model.losses import label_dtype
from pipeline.model.spec import FeatureSpec
from pipeline.worker.user_code import CodeArchive

log = logging.getLogger(__name__)
EXAMPLE_ROWS = 8
_PLAIN_SCALARS = (str, int, float, bool, type(None))
_RESERVED_NAMES = {"pipeline", "torch", "mlflow", "pyspark", "horovod", "numpy", "pandas"}


@dataclass(frozen=True)
class ModelCheck:
    code: CodeArchive | None  # what the ranks unpack (train.model.code), None when nothing is shipped
    seconds: float
    parameters: int
    output_shape: tuple[int, ...]


def check_model(train: TrainConfig, resolved: dict, spec: FeatureSpec) -> ModelCheck:
    """Build the model as a rank will and run one batch through it; returns the code archive for the plan.

    Raises:
        ConfigError: naming train.model.* / train.loss, the bad value and the fix.
    """
    started = time.perf_counter()
    code = ship_code(train.model.code) if train.model.code else None
    _check_plain(resolved["params"], "train.model.params")
    inputs = model_inputs(spec)
    factory = _import(resolved["factory"], "train.model.factory", code)
    _check_signature(factory, ("inputs", "params"), "train.model.factory", resolved["factory"])
    torch.manual_seed(0)
    try:
        model = factory(inputs, dict(resolved["params"]))
    except Exception as exc:
        raise ConfigError(
            f"train.model.factory {resolved['factory']!r} raised {_first_line(exc)} when called with inputs "
            f"({inputs.describe()}) and params {resolved['params']}. Fix: the factory or train.model.params"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"train.model.factory {resolved['factory']!r} returned {type(model).__name__}, not a torch.nn.Module. "
            "Fix: return the network itself (an nn.Module instance)"
        )
    _check_state_dict(model, resolved["factory"])
    logits = _forward(model, inputs, resolved["factory"])
    if train.loss:
        _check_loss(train.loss, logits, inputs, code)
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters())
    log.info(
        "model check passed in %.2fs: %s, %d parameters, logits %s",
        seconds,
        resolved["factory"],
        parameters,
        list(logits.shape),
    )
    return ModelCheck(code, seconds, parameters, tuple(logits.shape))


def code_path(setting: str) -> Path:
    """train.model.code as an existing .py file or folder whose name is importable."""
    path = Path(setting).expanduser()
    if not path.exists():
        raise ConfigError(
            f"train.model.code={setting!r}: no such file or folder (relative paths start at {Path.cwd()}). "
            "Fix: point it at the .py file or the package folder that holds your model factory"
        )
    if path.is_file() and path.suffix != ".py":
        raise ConfigError(
            f"train.model.code={setting!r} is a {path.suffix or 'suffix-less'} file. "
            "Fix: name a .py file or a package folder"
        )
    name = path.stem if path.is_file() else path.resolve().name
    if not name.isidentifier() or name in _RESERVED_NAMES:
        raise ConfigError(
            f"train.model.code={setting!r} would be imported as {name!r}, which "
            f"{'is not a Python identifier' if not name.isidentifier() else 'shadows a module the pipeline uses'}. "
            "Fix: rename the file or folder (letters, digits, underscores)"
        )
    return path.resolve()


def ship_code(setting: str) -> CodeArchive:
    """Zip train.model.code and make it importable on the driver exactly as the ranks will see it."""
    archive = CodeArchive.build(code_path(setting))
    _forget(archive.name)
    archive.activate()
    return archive


def _forget(name: str) -> None:
    """Drop an earlier import of the same name (an edited model re-checked in one process) and its unpacked copy."""
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    unpacked = str(Path(tempfile.gettempdir()) / "sparktrain-code-")

    def provides(entry: str) -> bool:
        return entry.startswith(unpacked) and ((Path(entry) / name).exists() or (Path(entry) / f"{name}.py").exists())

    sys.path[:] = [entry for entry in sys.path if not provides(entry)]


def _import(reference: str, setting: str, code: CodeArchive | None):
    module_name, _, attribute = reference.partition(":")
    shipped = (
        f"train.model.code ships {code.name!r} (from {code.source})"
        if code
        else "train.model.code is not set, so the module must be installed"
    )
    try:
        target = resolve(reference)
    except ModuleNotFoundError as exc:
        if not exc.name or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(  # the user's module was found; something it imports was not
                f"{setting} {reference!r}: importing {module_name!r} failed: {_first_line(exc)}. Fix: install "
                f"{exc.name!r} wherever the pipeline runs (the driver, every executor, the model server)"
            ) from None
        raise ConfigError(
            f"{setting} {reference!r}: module {module_name!r} cannot be imported ({_first_line(exc)}); {shipped}. "
            f"Fix: make the module path start with {code.name if code else 'an installed package'}, or set "
            "train.model.code to the file or folder that holds it"
        ) from None
    except AttributeError as exc:
        raise ConfigError(
            f"{setting} {reference!r}: module {module_name!r} has no {attribute!r} ({_first_line(exc)}). "
            "Fix: the name after ':' must be a function defined in that module"
        ) from None
    except Exception as exc:  # the user's module itself failed while importing
        raise ConfigError(
            f"{setting} {reference!r}: importing {module_name!r} failed: {_first_line(exc)}. Fix: the error in "
            "that module (import it in a Python shell to see the traceback)"
        ) from None
    if not callable(target):
        raise ConfigError(
            f"{setting} {reference!r} names a {type(target).__name__} object, not a function. Fix: name a function"
        )
    return target


def _check_signature(function, expected: tuple[str, ...], setting: str, reference: str) -> None:
    try:
        inspect.signature(function).bind(*expected)
    except TypeError as exc:
        raise ConfigError(
            f"{setting} {reference!r} has the signature {inspect.signature(function)}, but it is called as "
            f"{function.__name__}({', '.join(expected)}) ({exc}). Fix: accept exactly those {len(expected)} "
            "positional arguments"
        ) from None
    except ValueError:  # a builtin without an inspectable signature: the call itself will tell
        return


def _check_plain(value, where: str) -> None:
    """Only what YAML can write: the params are logged, stored in the registered model and compared by tuning."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} has the key {key!r} ({type(key).__name__}). Fix: use string keys")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN_SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(
            f"{where} is {value!r} ({type(value).__name__}), not a plain YAML value. Fix: pass strings, numbers, "
            "booleans, lists or mappings, and build objects inside the factory"
        )


def _check_state_dict(model: nn.Module, reference: str) -> None:
    for key, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(
                f"train.model.factory {reference!r}: the model's state_dict holds {key!r} = {type(value).__name__}, "
                "not a tensor; the registered weights are a plain state_dict loaded with weights_only=True. "
                "Fix: keep that value as a constructor argument (from params) or a registered buffer"
            )


def _forward(model: nn.Module, inputs: ModelInputs, reference: str) -> torch.Tensor:
    batch = example_batch(inputs, EXAMPLE_ROWS)
    model.train()  # as in training (batch norm, dropout)
    try:
        logits = model(batch)
    except Exception as exc:
        raise ConfigError(
            f"train.model.factory {reference!r}: the model's forward failed on a batch of {EXAMPLE_ROWS} rows "
            f"({describe_batch(batch)}): {_first_line(exc)}. Fix: forward(batch) gets a mapping of these tensors"
        ) from None
    rows, width = EXAMPLE_ROWS, inputs.output_dim
    expected = [(rows, width)] if inputs.task == "multiclass" else [(rows,), (rows, 1)]
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) not in expected or not logits.is_floating_point():
        got = (
            f"{type(logits).__name__} {list(logits.shape)} {logits.dtype}"
            if isinstance(logits, torch.Tensor)
            else (type(logits).__name__)
        )
        wanted = " or ".join(str(list(shape)) for shape in expected)
        raise ConfigError(
            f"train.model.factory {reference!r}: forward returned {got} for a batch of {rows} rows; a "
            f"{inputs.task} model must return float logits {wanted}. Fix: end the network with a layer of "
            f"inputs.output_dim={width} outputs"
        )
    return logits


def _check_loss(reference: str, logits: torch.Tensor, inputs: ModelInputs, code: CodeArchive | None) -> None:
    loss_fn = _import(reference, "train.loss", code)
    _check_signature(loss_fn, ("logits", "target"), "train.loss", reference)
    rows = logits.shape[0]
    if inputs.task == "multiclass":
        target = torch.randint(0, inputs.output_dim, (rows,), dtype=label_dtype("multiclass"))
    elif inputs.task == "binary":
        target = torch.randint(0, 2, (rows,)).float()
    else:
        target = torch.randn(rows)
    try:
        loss = loss_fn(logits, target)
        scalar = isinstance(loss, torch.Tensor) and loss.dim() == 0
        if scalar:
            loss.backward()
    except Exception as exc:
        raise ConfigError(
            f"train.loss {reference!r} failed on logits {list(logits.shape)} and target {target.dtype} "
            f"[{rows}]: {_first_line(exc)}. Fix: loss(logits, target) must return a scalar tensor"
        ) from None
    if not scalar:
        shape = list(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ConfigError(
            f"train.loss {reference!r} returned {shape}, not a scalar tensor. Fix: reduce it (e.g. .mean())"
        )


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
