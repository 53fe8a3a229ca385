"""Serving: recommendations, similar users and score reads (numpy + FAISS + store reads; no torch)."""
