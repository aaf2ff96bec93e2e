"""Distribution strategies as JAX meshes: tf.distribute's names, JAX's sharding.

A strategy says where batches and parameters live; the compiled steps are the
same ``jax.jit`` functions, and XLA inserts the collectives (gradient
all-reduce) from the shardings. No hand-written cluster code.
"""
from estlab.distribute._strategies import (InputContext, MirroredStrategy,
                                           MultiWorkerMirroredStrategy,
                                           OneDeviceStrategy, Strategy)

__all__ = ["InputContext", "MirroredStrategy", "MultiWorkerMirroredStrategy",
           "OneDeviceStrategy", "Strategy"]
