"""The fitted synthetic-users model: a profile generator (:class:`SynthModel`) and the batches it
draws into a graph (:class:`SynthBatch`).

Artifact layout under ``GRAPHREC_HOME/models/synth/<version>/``: ``arrays.safetensors`` holds the
generator network's state dict (``generator.<parameter>``: weights and buffers, e.g. the VAE's
ex-post latent mixture and the GAN's weight-averaged generator) and the profile scaler
(``profile_scaler.mean`` / ``.std``); ``manifest.json`` holds, besides what every model records
(data version, params, seed, feature columns, metrics), ``generator``: the model kind, the
``generative`` class, its constructor arguments, whether profiles are binary, the class names of a
conditional model and the layout ``format``. Nothing is pickled. Loading rebuilds the network
from the constructor arguments and refuses arrays that do not fit it or a feature list of another
width. torch is imported only when a generator is rebuilt or sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graphrec import artifacts
from graphrec.core.graph import Graph
from graphrec.core.scaling import Standardiser
from graphrec.tasks.base import ArtifactContent, Model, check_network_args
from graphrec.tasks.synth.evaluate import Realism, batch_realism
from graphrec.tasks.synth.profiles import GENERATOR_CLASSES, ProfileGenerator
from graphrec.tasks.synth.wiring import wire_synthetic

#: layout version of the ``generator`` manifest entry and arrays
GENERATOR_FORMAT = 1
_STATE_PREFIX = "generator."
_SCALER_PREFIX = "profile_scaler"


@dataclass
class SynthBatch:
    """Synthetic users drawn into a graph: ``profiles`` (``float32[n, d]``, the graph's feature
    columns), ``pairs`` (``int64[m, 2]``: synthetic row, real node) wiring them in, their
    :class:`~graphrec.tasks.synth.evaluate.Realism` and the ``label`` they carry (or None)."""

    profiles: np.ndarray
    pairs: np.ndarray
    realism: Realism
    label: str | None = None

    @property
    def size(self) -> int:
        return int(self.profiles.shape[0])


class SynthModel(Model):
    """A trained profile generator over ``feature_names``.

    ``metrics``: the generator's final training losses and the realism of the batch drawn at fit
    time. ``batch``: that batch (profiles and wiring), kept in memory so that what is written is
    exactly what the recorded figures describe; it is not part of the artifact."""

    kind = "synth"

    def __init__(self, generator: ProfileGenerator, feature_names: list[str], metrics: dict[str, Any] | None = None) -> None:
        if generator.width != len(feature_names):
            raise ValueError(f"the generator draws {generator.width} columns, the feature list has {len(feature_names)}")
        self.generator = generator
        self.feature_names = list(feature_names)
        self.metrics = dict(metrics or {})
        self.batch: SynthBatch | None = None

    @property
    def class_names(self) -> list[str]:
        """Classes of a conditional generator (empty when unconditional)."""
        return list(self.generator.class_names)

    def sample(self, n: int, *, label: str | None = None, seed: int = 0) -> np.ndarray:
        """``float32[n, d]`` synthetic profiles (of class ``label`` for a conditional generator)."""
        return self.generator.sample(n, label=label, seed=seed)

    def draw(self, graph: Graph, *, n: int, label: str | None = None, seed: int = 0, closure: float = 0.9) -> SynthBatch:
        """Sample ``n`` profiles and wire them into ``graph`` (a profile-anchored copy of a real neighbourhood,
        :func:`~graphrec.tasks.synth.wiring.wire_synthetic`), with the batch's realism on the
        graph as it is once written. The same seed draws the same batch."""
        self.check_compatible(graph.feature_names, retrain_hint="graphrec synth")
        profiles = self.sample(n, label=label, seed=seed)
        pairs = wire_synthetic(graph, profiles, closure=closure, seed=seed)
        return SynthBatch(profiles, pairs, batch_realism(graph, profiles, pairs), label)

    # -- artifact ----------------------------------------------------------------------------
    def to_artifact(self) -> ArtifactContent:
        gen = self.generator
        arrays = {_STATE_PREFIX + k: v for k, v in gen.state_arrays().items()}
        arrays.update(gen.scaler.to_arrays(_SCALER_PREFIX))
        manifest = {
            "generator": {
                "format": GENERATOR_FORMAT,
                "kind": gen.kind,
                "class": GENERATOR_CLASSES[gen.kind],
                "args": dict(gen.args),
                "binary": gen.binary,
                "class_names": list(gen.class_names),
            }
        }
        return ArtifactContent(arrays, manifest)

    @classmethod
    def from_artifact(cls, art: artifacts.Artifact) -> "SynthModel":
        """Rebuild the generator; ``ArtifactError`` for another layout format, ``ValueError`` when
        arrays, constructor arguments, class names and feature columns disagree (checked before
        the network is built, :func:`~graphrec.tasks.base.check_network_args`)."""
        spec = art.manifest["generator"]
        if spec.get("format") != GENERATOR_FORMAT:
            raise artifacts.ArtifactError(f"synth model {art.version} has generator format {spec.get('format')!r}, "
                                          f"this graphrec reads {GENERATOR_FORMAT}: run `graphrec synth` again")
        kind = spec["kind"]
        if GENERATOR_CLASSES.get(kind) != spec["class"]:
            raise ValueError(f"generator kind {kind!r} does not match class {spec['class']!r}")
        names = [str(n) for n in art.manifest["feature_names"]]
        scaler = Standardiser.from_arrays(art.arrays, _SCALER_PREFIX, width=len(names))
        state = {k[len(_STATE_PREFIX):]: v for k, v in art.arrays.items() if k.startswith(_STATE_PREFIX)}
        args = spec["args"]
        check_network_args(args, state, f"{kind} generator")  # before building it
        width = int(args["input_dim" if kind == "vae" else "data_dim"])
        if width != len(names):
            raise ValueError(f"the generator draws {width} columns, the manifest lists {len(names)} feature columns")
        class_names = [str(c) for c in spec["class_names"]]
        if len(class_names) != int(args["n_classes"]):
            raise ValueError(f"{len(class_names)} class names for a generator of {args['n_classes']} classes")
        gen = ProfileGenerator.from_state(kind, dict(args), state, binary=bool(spec["binary"]), scaler=scaler, class_names=class_names)
        return cls(gen, names, dict(art.manifest.get("metrics", {})))
