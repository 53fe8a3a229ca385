"""Serving: recommendations, similar users and score reads (numpy + FAISS + store reads; no torch).
Live anomaly scoring (:func:`graphrec.serving.scores.live_anomalies`) is the one path that loads a
torch model, on demand."""
