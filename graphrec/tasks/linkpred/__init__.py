"""Friend recommendation by link prediction.

``config`` (:class:`LinkPredConfig`), ``train`` (:class:`LinkPredTask` and the leakage-free ranker
training), ``model`` (:class:`LinkModel`, the numpy model the recommender serves), ``evaluate``
(the held-out-friendship protocol with heuristic baselines); internals: ``features`` (pair
features), ``profiles`` (sparse profile matrix), ``scorer`` (the ranker in numpy).
"""
