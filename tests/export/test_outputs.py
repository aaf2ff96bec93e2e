"""Export outputs and TF's rules for the default signature."""
import numpy as np
import pytest

import estlab
from estlab.export import _outputs

_SCORES = np.array([[0.2, 0.8]], np.float32)


def test_no_export_outputs_serve_the_predictions_as_default_and_predict():
  outputs = _outputs.signature_outputs(None, {"y": _SCORES})
  assert sorted(outputs) == ["predict", "serving_default"]
  assert outputs["serving_default"].device_outputs() == {"y": _SCORES}
  assert outputs["predict"].method_name == "tensorflow/serving/predict"


def test_a_single_output_is_also_the_default():
  regress = estlab.export.RegressionOutput(_SCORES[:, :1])
  outputs = _outputs.signature_outputs({"r": regress}, _SCORES)
  assert outputs["serving_default"] is regress
  assert outputs["predict"].device_outputs() == {"output": _SCORES}


def test_several_outputs_need_a_default():
  predict = estlab.export.PredictOutput({"y": _SCORES})
  with pytest.raises(ValueError, match="none is the default"):
    _outputs.signature_outputs({"a": predict, "b": predict}, _SCORES)


def test_export_outputs_must_be_estlab_outputs():
  with pytest.raises(TypeError, match="export_outputs\\['a'\\]"):
    _outputs.signature_outputs({"a": {"y": _SCORES}}, _SCORES)


def test_classification_output_maps_ids_to_names_on_the_host():
  out = estlab.export.ClassificationOutput(
      scores=_SCORES, classes=np.array([[0, 1]]), class_names=["no", "yes"])
  assert out.method_name == "tensorflow/serving/classify"
  assert sorted(out.device_outputs()) == ["classes", "scores"]
  assert out.host_outputs() == {"classes": {"op": "lookup", "source": "classes",
                                            "names": ["no", "yes"]}}
  no_names = estlab.export.ClassificationOutput(classes=np.array([[0, 1]]))
  assert no_names.host_outputs()["classes"]["op"] == "decimal"


@pytest.mark.parametrize("make, error, match", [
    (lambda: estlab.export.ClassificationOutput(), ValueError, "neither"),
    (lambda: estlab.export.ClassificationOutput(classes=_SCORES), TypeError,
     "integer class ids"),
    (lambda: estlab.export.ClassificationOutput(
        classes=np.array([["a"]])), TypeError, "strings"),
    (lambda: estlab.export.RegressionOutput(np.array([1])), TypeError,
     "floats"),
    (lambda: estlab.export.PredictOutput({1: _SCORES}), ValueError, "strings"),
    (lambda: estlab.export.PredictOutput({"y": [1.0]}), TypeError,
     "must be an array"),
])
def test_outputs_check_their_arrays(make, error, match):
  with pytest.raises(error, match=match):
    make()


def test_heads_give_tf_signatures_in_predict_mode():
  logits = np.zeros((2, 1), np.float32)
  spec = estlab.BinaryClassHead(label_vocabulary=["no", "yes"]).create_estimator_spec(
      {}, estlab.ModeKeys.PREDICT, logits)
  outputs = spec.export_outputs
  assert sorted(outputs) == ["classification", "predict", "regression",
                             "serving_default"]
  assert outputs["serving_default"] is outputs["classification"]
  assert outputs["classification"].class_names == ("no", "yes")
  assert "logistic" not in outputs["regression"].device_outputs()
  two = estlab.RegressionHead(label_dimension=2).create_estimator_spec(
      {}, estlab.ModeKeys.PREDICT, np.zeros((2, 2), np.float32)).export_outputs
  assert sorted(two) == ["predict", "serving_default"]  # regress: one value
