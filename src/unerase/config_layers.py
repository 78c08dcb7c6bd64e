"""How an overriding config (`--configfile config/sd14.yaml`, `--config ...`) combines with the defaults.

Snakemake merges nested mappings key by key, which is right for parameter blocks (sd14.yaml sets ESD's lr and keeps
the rest) and wrong for mappings keyed by names the user chooses: sd14.yaml's ten ImageNet classes *joined* the ten
digit classes of config/config.yaml, so every SD 1.4 run had "zero" ... "nine" among its control classes, labelled
with ImageNet indices 0-9. Such a mapping names a whole set, so the last layer that gives it replaces it.
"""
from __future__ import annotations

import copy


def keyed_mappings(schema: dict, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Config paths of the mappings keyed by user-chosen names: the schema's objects with `additionalProperties` given
    as a schema (classes, real_images, erasure.import.paths, the per-method guidance scales), not a fixed key set."""
    found = []
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(sub.get("additionalProperties"), dict) and not sub.get("properties"):
            found.append(path + (key,))
        else:
            found.extend(keyed_mappings(sub, path + (key,)))
    return found


def _lookup(config: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return None, False
        config = config[key]
    return config, True


def replace_keyed_mappings(config: dict, layers: list[dict], paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Set each of `paths` in `config` (already merged key by key) to its value in the last of `layers` (the overriding
    config files in command-line order, then `--config`) that gives it. Returns the paths replaced."""
    replaced = []
    for path in paths:
        value, given = None, False
        for layer in layers:
            layer_value, in_layer = _lookup(layer, path)
            if in_layer:
                value, given = layer_value, True
        if not given:
            continue
        parent, _ = _lookup(config, path[:-1])
        if isinstance(parent, dict):
            parent[path[-1]] = copy.deepcopy(value)
            replaced.append(path)
    return replaced
