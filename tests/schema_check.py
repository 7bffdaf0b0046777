"""A small JSON-Schema (2020-12 subset) validator for the recorded schemas in docs/schema.

Supports what those files use: type (incl. lists and "null"), enum, const, pattern,
minimum/maximum, minLength/maxLength, minItems/maxItems, properties, required,
additionalProperties (bool or schema), items, prefixItems, oneOf, anyOf, $ref to "#/...".
Unknown keywords are refused, so a schema cannot silently rely on something unchecked.
`errors(schema, value)` returns readable paths; [] means valid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"

_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "$defs"}
_KNOWN = _ANNOTATIONS | {
    "type", "enum", "const", "pattern", "minimum", "maximum", "minLength", "maxLength",
    "minItems", "maxItems", "properties", "required", "additionalProperties", "items",
    "prefixItems", "oneOf", "anyOf", "$ref",
}


def load(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text())


def _is_type(value, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown type {name!r}")


def _same(a, b) -> bool:
    """JSON equality: 1 != true."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _resolve(root: dict, ref: str) -> dict:
    if not ref.startswith("#/"):
        raise ValueError(f"only local refs are supported: {ref}")
    node = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def errors(schema: dict, value, root: dict | None = None, path: str = "$") -> list[str]:
    root = root if root is not None else schema
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"{path}: unsupported schema keyword(s) {sorted(unknown)}")
    out: list[str] = []
    if "$ref" in schema:
        out += errors(_resolve(root, schema["$ref"]), value, root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            return out + [f"{path}: {json.dumps(value)[:60]} is not of type {types}"]
    if "const" in schema and not _same(schema["const"], value):
        out.append(f"{path}: {json.dumps(value)[:60]} != const {json.dumps(schema['const'])}")
    if "enum" in schema and not any(_same(e, value) for e in schema["enum"]):
        out.append(f"{path}: {json.dumps(value)[:60]} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path}: {value[:60]!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            out.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path}: more than {schema['maxItems']} items")
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if sub is not None:
                out += errors(sub, item, root, f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += errors(props[key], item, root, f"{path}.{key}")
            elif extra is False:
                out.append(f"{path}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                out += errors(extra, item, root, f"{path}.{key}")
    if "oneOf" in schema:
        results = [errors(s, value, root, path) for s in schema["oneOf"]]
        matching = [r for r in results if not r]
        if len(matching) != 1:
            detail = "; ".join(min(results, key=len)[:3]) if not matching else "several branches match"
            out.append(f"{path}: must match exactly one of {len(results)} branches ({detail})")
    if "anyOf" in schema:
        results = [errors(s, value, root, path) for s in schema["anyOf"]]
        if all(results):
            out.append(f"{path}: matches no branch ({'; '.join(min(results, key=len)[:3])})")
    return out


def check(name: str, value) -> None:
    """Assert `value` matches docs/schema/<name>; message lists the first problems."""
    problems = errors(load(name), value)
    assert not problems, f"{name}: " + "; ".join(problems[:5])
