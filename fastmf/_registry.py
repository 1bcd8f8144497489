"""Estimators by name. The model-file loader and the command line discover models here, so
adding an estimator is its module plus one ``@register`` line -- no list to edit elsewhere."""

from __future__ import annotations

import importlib
from typing import Any

#: The modules that define estimators, imported on the first look-up (so ``import fastmf``
#: stays cheap). Adding an estimator adds its module here.
MODULES = ("fastmf.model", "fastmf.bayes", "fastmf.implicit", "fastmf.sgd")

_BY_NAME: dict[str, type] = {}
_BY_CLASS: dict[str, type] = {}


def _load() -> None:
    for module in MODULES:
        importlib.import_module(module)


def register(name: str, *, aliases: tuple[str, ...] = (), rank: int = 100):
    """Class decorator: make an estimator known as ``name`` (the CLI's ``--model``);
    ``rank`` orders the listings (help texts, the contract tests)."""

    def decorate(cls: type) -> type:
        for key in (name, *aliases):
            if key in _BY_NAME and _BY_NAME[key] is not cls:
                raise ValueError(f"estimator name {key!r} is taken by {_BY_NAME[key].__name__}")
            _BY_NAME[key] = cls
        _BY_CLASS[cls.__name__] = cls
        cls._registry_name = name
        cls._registry_rank = rank
        return cls

    return decorate


def by_name(name: str) -> type:
    """The estimator registered as ``name``; ``ValueError`` listing the known ones."""
    _load()
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(names())}") from None


def by_class_name(name: Any) -> type | None:
    """The estimator class called ``name`` (as a model file records it), or None."""
    _load()
    return _BY_CLASS.get(name) if isinstance(name, str) else None


def names() -> list[str]:
    """Registered names, aliases excluded, by rank."""
    return [cls._registry_name for cls in estimators()]


def estimators() -> list[type]:
    """Registered estimator classes, by rank."""
    _load()
    return sorted(_BY_CLASS.values(), key=lambda cls: cls._registry_rank)
