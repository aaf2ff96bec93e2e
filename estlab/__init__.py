"""estlab: tf.estimator on JAX."""
