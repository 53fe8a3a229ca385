"""Synthetic users: a profile generator (VAE or GAN from :mod:`generative`) trained on the real
users, wiring copied from similar real users' neighbourhoods, the privacy gate, realism figures, and ``graphrec synth``.

Modules: ``config`` (:class:`SynthConfig`), ``train`` (:class:`SynthTask`), ``model``
(:class:`SynthModel`, the generator as a saved artifact), ``evaluate`` (graph and profile
realism), ``profiles`` (the generators; also the profile sampler bot augmentation draws from),
``wiring`` and ``synthesize`` (writing a batch). Synthetic users are always flagged
``is_synthetic``, never recommended to real users and left out of evaluations unless asked."""
