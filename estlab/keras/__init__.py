"""estlab.keras: a compiled Keras 3 model as an Estimator (JAX backend).

``model_to_estimator`` (``_convert``) checks the model and its backend;
``_model_fn`` maps features and labels to the model's inputs and outputs and
builds the EstimatorSpec from the stateless forward pass, the compiled loss
(``_optimizer``: the Keras optimizer as an optax transformation) and the
compiled metrics (``_metrics``); ``_variables`` holds the Keras variables as
Flax variables. Keras is imported when ``model_to_estimator`` runs.

Example:
  >>> import os; os.environ['KERAS_BACKEND'] = 'jax'  # before keras
  >>> from estlab.keras import model_to_estimator
"""
from estlab.keras._convert import model_to_estimator

__all__ = ["model_to_estimator"]
