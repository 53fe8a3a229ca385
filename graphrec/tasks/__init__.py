"""The learning tasks (link prediction, bots, Siamese embeddings, anomalies, synthetic users).
Each is a package of the same shape; no task imports another."""
