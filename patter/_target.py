"""Load the agent a ``patter`` command runs: ``app.py:agent`` or ``package.module:agent``."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from patter._agent import Agent
from patter._client import Patter
from patter._log import redact
from patter.errors import PatterConfigError

_loads = itertools.count()


@dataclass(frozen=True)
class Target:
    """The agent named on the command line and the ``Patter`` of its module."""

    phone: Patter
    agent: Agent
    module: ModuleType


def load_target(spec: str) -> Target:
    """Import ``FILE.py:NAME`` or ``MODULE:NAME`` (NAME defaults to ``agent``) and return
    the agent and its module's ``Patter``; every mistake is a ``PatterConfigError`` naming
    the fix. The module's ``if __name__ == "__main__":`` block does not run."""
    where, _, name = spec.partition(":")
    name = name or "agent"
    is_file = where.endswith(".py") or "/" in where or "\\" in where
    dotted = all(part.isidentifier() for part in where.split("."))
    if not where or not name.isidentifier() or not (is_file or dotted):
        raise PatterConfigError(
            f"{spec!r} is not an agent to load: write FILE.py:NAME or MODULE:NAME, "
            "e.g. app.py:agent or examples/ivr_menu.py:agent."
        )
    module = _import_file(where) if is_file else _import_module(where, spec)
    agent = getattr(module, name, None)
    if agent is None:
        found = [key for key, value in vars(module).items() if isinstance(value, Agent)]
        hint = f"; it defines {', '.join(found)}" if found else (
            "; define one at module level: agent = phone.agent(...)"
        )
        raise PatterConfigError(f"{where} has no attribute {name!r}{hint}.")
    if not isinstance(agent, Agent):
        raise PatterConfigError(
            f"{where}:{name} is a {type(agent).__name__}, not an agent: point at the object "
            "phone.agent(...) returned, e.g. app.py:agent."
        )
    return Target(_phone_of(module, where), agent, module)


def _import_file(where: str) -> ModuleType:
    """Run the script as a fresh module, turning the usual failures into clear errors."""
    path = Path(where).resolve()
    if not path.is_file():
        raise PatterConfigError(
            f"{where} not found (looked at {path}): give the path of your script, "
            "e.g. patter simulate examples/ivr_menu.py:agent."
        )
    # A fresh module per load, under a name no real module has: a script named like
    # a stdlib module (json.py) must not replace it, and each load reads settings anew.
    name = f"_patter_target_{next(_loads)}_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PatterConfigError(f"{where} is not a Python file Patter can import.")
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(path.parent))  # the script's own imports of its neighbours
    sys.modules[name] = module
    try:
        _run(lambda: module_spec.loader.exec_module(module), where)  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(path.parent))
    return module


def _import_module(where: str, spec: str) -> ModuleType:
    """Import the module by name from the current folder or the path (afresh if it was
    imported before, so it reads its settings now), turning failures into clear errors."""
    if os.getcwd() not in sys.path:  # a console script's path starts at its bin folder
        sys.path.insert(0, os.getcwd())
    loaded = sys.modules.get(where)
    try:
        _run(lambda: importlib.reload(loaded) if loaded else importlib.import_module(where),
             where)
        return sys.modules[where]
    except ModuleNotFoundError as exc:
        if exc.name != where.split(".")[0] and exc.name != where:
            raise
        raise PatterConfigError(
            f"no module named {where!r}: run the command from the folder that holds it, "
            f"or give a file path (e.g. {where.replace('.', '/')}.py:agent); got {spec!r}."
        ) from None


def _run(load: Callable[[], object], where: str) -> None:
    """Import through ``load()``; a missing environment variable or a crash in the user's
    module becomes a ``PatterConfigError`` (Patter's own config errors pass as they are)."""
    try:
        load()
    except (PatterConfigError, ModuleNotFoundError):
        raise
    except KeyError as exc:
        raise PatterConfigError(
            f"{where} reads the environment variable {exc.args[0]!r}, which is not set: set "
            "it or put it in a .env file in the current folder."
        ) from None
    except Exception as exc:
        raise PatterConfigError(
            redact(f"importing {where} failed: {type(exc).__name__}: {exc}")
        ) from exc


def _phone_of(module: ModuleType, where: str) -> Patter:
    """The module's ``phone`` if it is a ``Patter``, else its one ``Patter``."""
    phone = getattr(module, "phone", None)
    if isinstance(phone, Patter):
        return phone
    phones = [value for value in vars(module).values() if isinstance(value, Patter)]
    if len(phones) != 1:
        raise PatterConfigError(
            f"{where} must define its Patter at module level (phone = Patter(...)) so the "
            f"command can serve the agent; found {len(phones)}."
        )
    return phones[0]
