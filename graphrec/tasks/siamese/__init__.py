"""Siamese profile embeddings: a shared-weight encoder trained on friendships (and circles) that
embeds any user from the profile alone (cold start). ``config`` (hyper-parameters), ``train``
(:class:`~graphrec.tasks.siamese.train.SiameseTask`), ``model`` (the fitted model, numpy
inference and its FAISS index), ``evaluate`` (the cold-start protocol). Serving is
:mod:`graphrec.serving.similar`."""
