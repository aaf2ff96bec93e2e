"""Embedding, shared embedding and indicator columns: names and argument checks."""
import pytest

from estlab import feature_column as fc

_COLOR = fc.categorical_column_with_vocabulary_list("color", ["R", "G", "B"])


def test_names_shapes_and_parents_are_tfs():
  emb = fc.embedding_column(_COLOR, 4)
  ind = fc.indicator_column(_COLOR)
  assert (emb.name, emb.variable_shape, emb.combiner) == ("color_embedding", (4,),
                                                          "mean")
  assert (ind.name, ind.variable_shape) == ("color_indicator", (1, 3))
  assert emb.parents == ind.parents == [_COLOR]
  assert emb.parse_example_spec == {"color": fc.VarLenFeature("string")}


def test_shared_embeddings_keep_order_and_name_the_collection_by_sorted_names():
  watched = fc.categorical_column_with_identity("watched", 10)
  impressed = fc.weighted_categorical_column(
      fc.categorical_column_with_identity("impressed", 10), "w")
  columns = fc.shared_embeddings([watched, impressed], 3, combiner="sqrtn")
  assert [c.name for c in columns] == ["watched_shared_embedding",
                                       "impressed_weighted_by_w_shared_embedding"]
  assert {c.shared_embedding_collection_name for c in columns} == {
      "impressed_weighted_by_w_watched_shared_embedding"}
  named = fc.shared_embeddings([watched, impressed], 3,
                               shared_embedding_collection_name="videos")
  assert named[0].shared_embedding_collection_name == "videos"


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(dimension=0), ValueError, "Invalid dimension 0"),
    (dict(dimension=2, combiner="max"), ValueError, "combiner 'max'"),
    (dict(dimension=2, initializer=1.0), ValueError, "callable"),
    (dict(dimension=2, ckpt_to_load_from="/ckpt"), ValueError, "both"),
    (dict(dimension=2, ckpt_to_load_from="/c", tensor_name_in_ckpt="t"),
     NotImplementedError, "WarmStartSettings"),
])
def test_embedding_column_rejects_bad_arguments(kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    fc.embedding_column(_COLOR, **kwargs)


def test_dense_wrappers_need_categorical_columns():
  with pytest.raises(ValueError, match="categorical column"):
    fc.embedding_column(fc.numeric_column("x"), 2)
  with pytest.raises(ValueError, match="categorical column"):
    fc.indicator_column("color")


def test_shared_embeddings_need_matching_columns():
  ids = fc.categorical_column_with_identity("a", 3)
  with pytest.raises(ValueError, match="same number of buckets"):
    fc.shared_embeddings([ids, fc.categorical_column_with_identity("b", 4)], 2)
  with pytest.raises(ValueError, match="same type"):
    fc.shared_embeddings([ids, _COLOR], 2)
  with pytest.raises(ValueError, match="empty"):
    fc.shared_embeddings([], 2)
