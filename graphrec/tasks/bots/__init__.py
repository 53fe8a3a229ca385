"""Bot detection: node classification from a few labelled accounts.

``config`` (:class:`~graphrec.tasks.bots.config.BotConfig`), ``train`` (:class:`~graphrec.tasks.bots.train.BotTask`,
the cross-fitted GNN), ``model`` (:class:`~graphrec.tasks.bots.model.BotModel`: artifact, scoring,
explanations), ``evaluate`` (the protocol and baselines), ``signals`` (structural and
label-propagation inputs), ``augment`` (synthetic training examples) and ``inject`` (the
bot-region benchmark setting)."""
