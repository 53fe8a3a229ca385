"""Synthetic users (issue 7): profile generators from :mod:`generative`, graph wiring, and the
store side of ``graphrec synth`` / ``graphrec synth purge``. Synthetic users are always flagged
``is_synthetic``, never recommended to real users and left out of evaluations unless asked."""
