"""The engine: what runs a model_fn as compiled steps, between the input path and checkpoints.

Estimator (``estlab.estimator``) hands it device batches (``estlab.data``)
and a checkpoint handle (``estlab.checkpoint``); it never imports either.
Its modules, in the order a train call uses them:

1. ``model_fn``    the model_fn in a Flax module scope (``ModelFnModule``).
2. ``state``       ``TrainState``: the pytree that lives on the device.
3. ``flat``        small params carried as one vector between steps.
4. ``xla_options`` XLA compile options for the steps (and which XLA takes).
5. ``steps``       ``CompiledSteps``: jitted init / train / train loop /
                   eval / predict, compiled once per shape.
6. ``startup``     compiling ahead in threads; small states drawn on the host.
7. ``loops``       the host loops driving the steps: ``TrainLoop`` (hooks,
                   summaries, checkpoints, the NaN check), evaluation and
                   prediction.
8. ``session``     the train state across calls: kept in memory, restored,
                   or initialised; ``Session.train`` runs a ``TrainLoop``.
9. ``host_step``   ``HostStep``: the Python an estimator runs on the host
                   around the step (encoding before, class names after), as
                   data the input path, the loops and the export read.
"""
