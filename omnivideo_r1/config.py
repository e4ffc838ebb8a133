"""Typed configs from YAML recipes plus `key=value` overrides.

Each job defines its config as (nested) dataclasses with a docstring under every field. A recipe is a YAML file
whose keys mirror the dataclass fields; overrides use dotted keys (`gspo.clip_low=2e-4`, `rollout.rollouts_per_prompt=4`).
Unknown keys and wrongly typed values are errors that name the recipe and the key, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, TypeVar

import yaml

from .errors import UserError

T = TypeVar("T")

RECIPE_DIR = os.path.join(os.path.dirname(__file__), "recipes")


class ConfigError(UserError, ValueError):
    """A recipe or override that does not fit the config dataclass (unknown key, wrong type, invalid value)."""


def resolve_recipe_path(name_or_path: str) -> str:
    """A path to a YAML file, or the name of a recipe shipped in omnivideo_r1/recipes (with or without .yaml)."""
    if os.path.exists(name_or_path):
        return name_or_path
    for candidate in (name_or_path, f"{name_or_path}.yaml"):
        shipped = os.path.join(RECIPE_DIR, candidate)
        if os.path.exists(shipped):
            return shipped
    shipped = sorted(f[:-5] for f in os.listdir(RECIPE_DIR) if f.endswith(".yaml")) if os.path.isdir(RECIPE_DIR) else []
    raise ConfigError(f"recipe {name_or_path!r} not found: give a YAML path or one of the shipped recipes {shipped}")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return build_config(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp) or (Any, Any)
        return {k: _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if typing.get_origin(tp) is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def build_config(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """`cls` from a plain mapping (a recipe section), with the loader's unknown-key, type and value errors.

    `where` names the section in messages (a recipe path, "reward_options.format", ...).
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    kwargs = {k: _coerce(_onto_field_default(cls, k, v), hints[k], f"{where}.{k}" if where else k)
              for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def _onto_field_default(cls: type, name: str, value: Any) -> Any:
    """A mapping given for a nested config section keeps the parent's default of that section for every key it
    does not set: `world.width=64` on a config whose default world is 96x64 gives a 64x64 world, not the section
    class's own defaults with width 64."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if not isinstance(value, dict) or field.default_factory is dataclasses.MISSING:
        return value
    default = field.default_factory()
    if not dataclasses.is_dataclass(default):
        return value
    return {**{f.name: getattr(default, f.name) for f in dataclasses.fields(default) if f.init}, **value}


def _set_dotted(tree: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


def load_config(cls: type[T], recipe: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build `cls` from an optional YAML recipe, then apply `key=value` overrides (values parsed as YAML)."""
    data: dict[str, Any] = {}
    where = cls.__name__
    if recipe:
        path = resolve_recipe_path(recipe)
        where = path
        with open(path, encoding="utf-8") as fh:
            try:
                loaded = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of config keys")
        data = loaded
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. gspo.clip_low=3e-4)")
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), raw)
    return build_config(cls, data, where if recipe else "")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict (for writing the resolved config next to a run)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)
