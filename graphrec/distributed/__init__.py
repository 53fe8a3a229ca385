"""The distributed path (issue 17): the nightly scoring, training, batch recommendations and the
index build on `Ray <https://www.ray.io>`_, over a snapshot written as Parquet partitions.

The single-process path stays the default and the embedded one; this package is used only with
``--engine ray`` and needs the optional extra ``pip install graphrec[distributed]`` (``ray[data,train]``).
Nothing here is imported by ``import graphrec``: :func:`graphrec.distributed.engine.require_ray`
turns a missing Ray into a one-line :class:`~graphrec.errors.InputError`.

Modules: :mod:`~graphrec.distributed.engine` (engine choice and the Ray session),
:mod:`~graphrec.distributed.partitions` (the store streamed into Parquet partitions),
:mod:`~graphrec.distributed.graphops` (one partition's share of every graph operation),
:mod:`~graphrec.distributed.cluster` (the partitions as Ray actors),
:mod:`~graphrec.distributed.scoring` (the bot model's nightly scoring, stage by stage).
"""
