"""The registered tasks, by name, loaded lazily (a task's module may import torch).

This is the one module that knows every task; tasks themselves never import each other. Where
one task serves another through the protocol (bot augmentation draws profiles from the synthetic
users' generator), the wiring happens here: see :func:`profile_generator_factory`.
"""

from __future__ import annotations

import importlib
from typing import Any

from graphrec.errors import InputError
from graphrec.tasks.base import ProfileSamplerFactory, Task

#: task name -> "module:class" of its :class:`~graphrec.tasks.base.Task`
TASKS: dict[str, str] = {
    "linkpred": "graphrec.tasks.linkpred.train:LinkPredTask",
    "bots": "graphrec.tasks.bots.train:BotTask",
    "siamese": "graphrec.tasks.siamese.train:SiameseTask",
    "anomaly": "graphrec.tasks.anomaly.train:AnomalyTask",
    "synth": "graphrec.tasks.synth.train:SynthTask",
}


#: task name -> the command that trains it, where it is not ``graphrec train NAME`` (named in errors)
TRAIN_COMMANDS: dict[str, str] = {"synth": "graphrec synth --n N"}


def task_class(name: str) -> type[Task[Any, Any]]:
    """The task class registered under ``name`` (``InputError`` for an unknown name)."""
    try:
        target = TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}") from None
    module, _, cls = target.partition(":")
    task: type[Task[Any, Any]] = getattr(importlib.import_module(module), cls)
    if name in TRAIN_COMMANDS:
        task.model_type.train_command = TRAIN_COMMANDS[name]
    return task


def task_of_kind(kind: str) -> str:
    """The name of the task whose models are of ``kind`` (``bot`` -> ``bots``; a task's own name
    is accepted too); ``InputError`` naming the known kinds otherwise."""
    if kind in TASKS:
        return kind
    for name in TASKS:
        if task_class(name).kind == kind:
            return name
    kinds = sorted({task_class(n).kind for n in TASKS})
    raise InputError(f"unknown model kind {kind!r}: choose one of {', '.join(kinds)} (or a task name: {', '.join(TASKS)})")


def get_task(name: str, **kwargs: Any) -> Task[Any, Any]:
    """A ready task instance (``kwargs`` go to its constructor). The bot task gets the synthetic
    users' profile generator for ``--augment`` unless one is given."""
    if name == "bots":
        kwargs.setdefault("profile_generators", profile_generator_factory())
    return task_class(name)(**kwargs)


def profile_generator_factory() -> ProfileSamplerFactory:
    """The synthetic-users task's profile generator, as the :class:`ProfileSamplerFactory` that bot
    augmentation uses (the one declared cross-task use, wired here through the protocol)."""
    from graphrec.tasks.synth.profiles import fit_profile_generator

    return fit_profile_generator


def scoring_task_names() -> list[str]:
    """Tasks whose models score every user in the nightly job, in the job's order."""
    return [name for name in TASKS if task_class(name).scores_users]
