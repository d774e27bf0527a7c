"""The driver's pre-launch model check: every mistake a user can make bringing a model is one clear ConfigError.

Real user code (files written per test, imported through train.model.code), real torch modules; no Spark.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from pipeline.config.load import load_config
from pipeline.errors import ConfigError
from pipeline.launch.model_check import check_model
from pipeline.launch.planning import resolved_model
from pipeline.model.spec import CategoricalVocab, FeatureSpec, LabelSpec, NumericStats
from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "custom_model" / "tabular_resnet"
GOOD_MODEL = """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, inputs, width):
            super().__init__()
            self.emb = nn.Embedding(inputs.cardinalities[0], 4)
            self.out = nn.Linear(inputs.num_numeric + 4, inputs.output_dim)

        def forward(self, batch):
            return self.out(torch.cat([batch["numeric"], self.emb(batch["categorical"][:, 0])], dim=1))

    def build(inputs, params):
        return Net(inputs, params.get("width", 4))
"""


def spec(task: str = "binary") -> FeatureSpec:
    classes = ("a", "b", "c") if task == "multiclass" else ()
    return FeatureSpec(
        input_schema={"x": "double", "k": "string", "y": "double"},
        numeric=(NumericStats("x", 0.0, 0.0, 1.0),),
        categorical=(CategoricalVocab("k", ("u", "v")),),
        label=LabelSpec("y", task, classes=classes),
    )


def user_module(tmp_path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def check(*overrides: str, task: str = "binary", params: dict | None = None):
    train = load_config([], list(overrides)).train
    if params is not None:  # objects YAML cannot write, as a Python caller could pass them
        train = train.model_copy(update={"model": train.model.model_copy(update={"params": params})})
    return check_model(train, resolved_model(train.model), spec(task))


def custom(code: str, factory: str, *more: str) -> list[str]:
    return ["train.model.type=custom", f"train.model.code={code}", f"train.model.factory={factory}", *more]


def test_the_example_model_passes_in_seconds():
    result = check(*custom(str(EXAMPLE), "tabular_resnet:build", "train.model.params={width: 16, blocks: 1}"))
    assert result.code is not None and result.code.name == "tabular_resnet"
    assert result.output_shape == (8, 1) and result.parameters > 0
    assert result.seconds < 10


@pytest.mark.parametrize("task, width", [("binary", 1), ("multiclass", 3)])
def test_builtins_pass_the_same_check(task, width):
    for model_type in ("mlp", "linear"):
        result = check(f"train.model.type={model_type}", task=task)
        assert result.code is None and result.output_shape == (8, width)


def test_a_single_file_works_and_a_custom_loss_is_checked(tmp_path):
    squared = """
    def loss(logits, target):
        return ((logits.reshape(-1) - target) ** 2).mean()
    """
    code = user_module(tmp_path, "one_file_model", GOOD_MODEL + squared)
    result = check(*custom(code, "one_file_model:build", "train.loss=one_file_model:loss"))
    assert result.code.name == "one_file_model"


def test_edited_code_is_rechecked_in_the_same_process(tmp_path):
    code = user_module(tmp_path, "edited_model", GOOD_MODEL)
    check(*custom(code, "edited_model:build"))
    user_module(tmp_path, "edited_model", GOOD_MODEL.replace("inputs.output_dim)", "5)"))
    with pytest.raises(ConfigError, match=r"forward returned Tensor \[8, 5\]"):
        check(*custom(code, "edited_model:build"))


def message(*overrides: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        check(*overrides, **kwargs)
    text = str(err.value)
    assert "\n" not in text and "Fix:" in text, text  # one line, with the fix
    return text


def test_code_path_missing(tmp_path):
    text = message(*custom(str(tmp_path / "nowhere"), "nowhere:build"))
    assert "train.model.code=" in text and "no such file or folder" in text


def test_code_path_not_python_or_not_importable(tmp_path):
    (tmp_path / "model.txt").write_text("x")
    assert "is a .txt file" in message(*custom(str(tmp_path / "model.txt"), "model:build"))
    (tmp_path / "my-model.py").write_text("x = 1\n")
    assert "not a Python identifier" in message(*custom(str(tmp_path / "my-model.py"), "my_model:build"))


def test_factory_module_not_importable(tmp_path):
    code = user_module(tmp_path, "present_module", GOOD_MODEL)
    text = message(*custom(code, "absent_module:build"))
    assert "train.model.factory 'absent_module:build'" in text
    assert "No module named 'absent_module'" in text and "ships 'present_module'" in text


@pytest.mark.parametrize(
    "name, body, factory, expected",
    [
        (
            "needs_timm_model",
            "import timm_not_installed\n",
            "build",
            ["No module named 'timm_not_installed'", "Fix: install 'timm_not_installed'"],
        ),
        ("no_attr_model", GOOD_MODEL, "make_model", ["has no 'make_model'"]),
        (
            "broken_import_model",
            "import torch\nraise RuntimeError('needs a GPU driver')\n",
            "build",
            ["importing 'broken_import_model' failed: RuntimeError: needs a GPU driver"],
        ),
        ("constant_model", "build = 3\n", "build", ["names a int object, not a function"]),
        (
            "signature_model",
            "def build_one(inputs):\n    return None\n",
            "build_one",
            ["has the signature (inputs)", "build_one(inputs, params)"],
        ),
        (
            "raising_model",
            "def build(inputs, params):\n    raise KeyError('width')\n",
            "build",
            ["raised KeyError: 'width'", "numeric float32 [B, 2]"],
        ),
        (
            "dict_model",
            "def build(inputs, params):\n    return {'layers': 2}\n",
            "build",
            ["returned dict, not a torch.nn.Module"],
        ),
    ],
)
def test_factory_mistakes(tmp_path, name, body, factory, expected):
    code = user_module(tmp_path, name, body)
    text = message(*custom(code, f"{name}:{factory}"))
    for part in expected:
        assert part in text, text


def test_params_that_are_not_plain_values(tmp_path):
    code = user_module(tmp_path, "params_model", GOOD_MODEL)
    text = message(*custom(code, "params_model:build"), params={"width": 4, "init": object()})
    assert "train.model.params.init is <object object" in text and "not a plain YAML value" in text


def test_state_dict_with_objects(tmp_path):
    body = (
        GOOD_MODEL
        + """
    class WithExtra(Net):
        def get_extra_state(self):
            return {"vocabulary": ["a", "b"]}

        def set_extra_state(self, state):
            pass

    def build_extra(inputs, params):
        return WithExtra(inputs, 4)
    """
    )
    code = user_module(tmp_path, "extra_state_model", body)
    text = message(*custom(code, "extra_state_model:build_extra"))
    assert "state_dict holds '_extra_state' = dict" in text and "weights_only=True" in text


def test_forward_that_fails_shows_the_batch_shapes(tmp_path):
    code = user_module(tmp_path, "forward_model", GOOD_MODEL.replace('batch["numeric"]', 'batch["image"]'))
    text = message(*custom(code, "forward_model:build"))
    assert "forward failed on a batch of 8 rows" in text
    assert "numeric float32 [8, 2], categorical int64 [8, 1]" in text and "KeyError: 'image'" in text


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_forward_with_the_wrong_output_shape(tmp_path, task):
    code = user_module(tmp_path, f"shape_model_{task}", GOOD_MODEL.replace("inputs.output_dim)", "2)"))
    text = message(*custom(code, f"shape_model_{task}:build"), task=task)
    expected = "[8] or [8, 1]" if task == "binary" else "[8, 3]"
    assert f"returned Tensor [8, 2] torch.float32 for a batch of 8 rows; a {task} model must return" in text
    assert expected in text


def test_custom_loss_errors(tmp_path):
    body = (
        GOOD_MODEL
        + """
    def per_row(logits, target):
        return (logits.reshape(-1) - target) ** 2

    def three(logits, target, weights):
        return logits.mean()
    """
    )
    code = user_module(tmp_path, "loss_model", body)
    text = message(*custom(code, "loss_model:build", "train.loss=loss_model:per_row"))
    assert "train.loss 'loss_model:per_row' returned [8], not a scalar tensor" in text
    text = message(*custom(code, "loss_model:build", "train.loss=loss_model:three"))
    assert "train.loss 'loss_model:three' has the signature (logits, target, weights)" in text


def test_config_level_mistakes_name_the_key():
    with pytest.raises(ConfigError, match="type custom needs factory"):
        load_config([], ["train.model.type=custom"])
    with pytest.raises(ConfigError, match="only apply to type custom"):
        load_config([], ["train.model.factory=my_models:build"])
    with pytest.raises(ConfigError, match='is not "package.module:function"'):
        load_config([], ["train.model.type=custom", "train.model.factory=my_models.build"])


def test_checked_code_is_importable_on_the_driver_not_the_users_folder():
    check(*custom(str(EXAMPLE), "tabular_resnet:build"))
    import tabular_resnet

    assert "sparktrain-code-" in tabular_resnet.__file__  # the unpacked archive the ranks get, not the checkout
    assert str(EXAMPLE.parent) not in sys.path
