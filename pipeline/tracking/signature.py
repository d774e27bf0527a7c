"""The registered model's MLflow signature (driver side): nullable column inputs spark_udf can feed, and outputs."""

from __future__ import annotations

from pipeline.errors import TrackingError
from pipeline.model.predictor import output_columns
from pipeline.model.spec import FeatureSpec

SPARK_TO_MLFLOW = {
    "double": "double",
    "float": "float",
    "int": "integer",
    "smallint": "integer",
    "tinyint": "integer",
    "bigint": "long",
    "string": "string",
    "boolean": "boolean",
    "timestamp": "datetime",
    "date": "datetime",
    "binary": "binary",  # encoded image files; REST clients send them base64-encoded
}


def model_signature(spec: FeatureSpec):
    """Column-based signature (nullable inputs), which spark_udf can feed from scalar columns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = []
    for column in spec.input_columns:
        spark_type = spec.input_schema[column]
        element = spark_type.removeprefix("array<").removesuffix(">")
        if spark_type.startswith("array<") and element in ("float", "double"):  # features.arrays
            inputs.append(ColSpec(Array(SPARK_TO_MLFLOW[element]), column, required=False))
            continue
        if spark_type not in SPARK_TO_MLFLOW:
            raise TrackingError(
                f"input column {column!r} has type {spark_type}, which the model signature cannot carry. "
                "Fix: cast it in data.query to double, bigint, string, boolean, timestamp or binary"
            )
        inputs.append(ColSpec(SPARK_TO_MLFLOW[spark_type], column, required=False))
    outputs = [ColSpec(kind, name) for name, kind in output_columns(spec.label)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))
