"""MLflow "models from code" entry: the registered model is this file plus code, never a pickled object."""

from mlflow.models import set_model

from pipeline.model.pyfunc import TabularModel

set_model(TabularModel())
