"""What a model constrained to a JSON Schema produces, for the fakes."""

from __future__ import annotations

from typing import Any


def instance_of(schema: Any) -> Any:
    """A small value that satisfies `schema` (the subset of JSON Schema Ollama's grammar covers),
    as a model constrained by `format` would produce."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance_of(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: instance_of(sub) for name, sub in properties.items()}
    if kind == "array":
        return [instance_of(schema.get("items") or {"type": "string"})]
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(
        kind, "text"
    )
