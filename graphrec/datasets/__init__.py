"""Datasets graphrec can load without any download (the bundled SNAP ego-Facebook graph)."""

from graphrec.datasets.ego_facebook import EgoFacebook, load_ego_facebook

__all__ = ["EgoFacebook", "load_ego_facebook"]
