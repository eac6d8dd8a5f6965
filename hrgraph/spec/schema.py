"""The JSON Schema of spec files, for editors (``hrgraph schema``).

Nodes are validated by a dispatch on ``kind`` through the block registry, so
the schema is assembled here from every registered kind as a discriminated
``oneOf``.  No torch here.
"""

from __future__ import annotations

from typing import Any

from .kinds import KINDS, kind_tag
from .models import Spec

__all__ = ["spec_json_schema"]


def _edge_pattern(edge: dict[str, Any]) -> dict[str, Any]:
    """An edge pattern (hrgraph.spec.patterns): an edge whose ends may be globs or lists, with min_skip/max_skip."""
    ends = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    properties = {**edge["properties"], "from": ends, "to": ends}
    properties["min_skip"] = {"type": "integer", "description": "Least position(to) - position(from) (default 1)."}
    properties["max_skip"] = {"type": "integer", "description": "Greatest position(to) - position(from)."}
    return {
        "title": "EdgePattern",
        "description": "Stands for every edge between matching nodes, expanded at load time (docs/spec.md, Edge patterns).",
        "type": "object",
        "properties": properties,
        "required": ["from", "to"],
        "additionalProperties": False,
    }


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, for editors (covers every registered block kind).

    Examples
    --------
    >>> schema = spec_json_schema()
    >>> sorted(schema["$defs"]["Node"]["discriminator"]["mapping"])[:3]
    ['basic', 'bottleneck', 'classifier']
    """
    classes = KINDS.classes()
    defs: dict[str, Any] = {}
    refs = []
    mapping = {}
    for cls in classes:
        sub = cls.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[cls.__name__] = sub
        ref = f"#/$defs/{cls.__name__}"
        refs.append({"$ref": ref})
        mapping[kind_tag(cls)] = ref
    node_schema = {"oneOf": refs, "discriminator": {"propertyName": "kind", "mapping": mapping}}
    schema = Spec.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    defs["Node"] = node_schema
    schema["properties"]["nodes"]["items"] = {"$ref": "#/$defs/Node"}
    schema["properties"]["edges"]["items"] = {"anyOf": [{"$ref": "#/$defs/Edge"}, _edge_pattern(defs["Edge"])]}
    schema["properties"]["extends"] = {
        "type": "string",
        "description": "Path of a parent spec; nodes given here replace the parent's by id, edges are added.",
    }
    schema["properties"]["remove_edges"] = {
        "type": "array",
        "items": {"type": "string", "pattern": "^\\s*[A-Za-z][A-Za-z0-9_]*\\s*(:|->)\\s*[A-Za-z][A-Za-z0-9_]*\\s*$"},
        "description": "Edges of the parent to drop, as 'from:to'.",
    }
    required = schema.pop("required", [])
    schema["if"] = {"required": ["extends"]}
    schema["then"] = {}
    schema["else"] = {"required": required}
    schema["$defs"] = defs
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hrgraph spec"
    return schema
