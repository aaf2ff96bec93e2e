"""Premade estimators: logit functions plus heads, with tf.estimator's names."""
from estlab.premade._base import PremadeEstimator
from estlab.premade.baseline import (BaselineClassifier, BaselineEstimator,
                                     BaselineRegressor)
from estlab.premade.dnn import DNNClassifier, DNNEstimator, DNNRegressor
from estlab.premade.dnn_linear_combined import (DNNLinearCombinedClassifier,
                                                DNNLinearCombinedEstimator,
                                                DNNLinearCombinedRegressor)
from estlab.premade.linear import (LinearClassifier, LinearEstimator,
                                   LinearRegressor)

__all__ = [
    "PremadeEstimator", "BaselineClassifier", "BaselineRegressor",
    "BaselineEstimator", "LinearClassifier", "LinearRegressor",
    "LinearEstimator", "DNNClassifier", "DNNRegressor", "DNNEstimator",
    "DNNLinearCombinedClassifier", "DNNLinearCombinedRegressor",
    "DNNLinearCombinedEstimator",
]
