"""Shared graph code used by every task and by serving: the graph container and operators,
scaling, splits, metrics and the FAISS index wrapper. Nothing here imports torch at import time."""
