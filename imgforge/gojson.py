"""JSON text as Go's encoding/json writes it, for files Apptainer writes with it.

Apptainer writes labels.json, oci-config.json and inspect-metadata.json with Go's
``json.Marshal``/``MarshalIndent``. Python's ``json`` module writes the same text for the
same values except for the characters Go escapes in strings for safe embedding in HTML
(``<``, ``>``, ``&``) and the line separators U+2028 and U+2029. Key order is the
caller's: Go writes struct fields in declaration order and map keys sorted by bytes
(for ``str`` keys, code point order is the same order).
"""

from __future__ import annotations

import json
from typing import Any

# Written as \u escapes by Go's encodeState.string (HTMLEscape on, as in json.Marshal).
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def dumps(value: Any, *, indent: bool = False) -> str:
    """``json.Marshal(value)``, or ``json.MarshalIndent(value, "", "\\t")`` with ``indent``.

    The characters translated only ever occur inside strings, so translating the whole
    text changes nothing else.
    """
    if indent:
        text = json.dumps(value, ensure_ascii=False, indent="\t")
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_GO_ESCAPES)


def sorted_map(mapping: dict[str, Any]) -> dict[str, Any]:
    """A Go map's JSON key order: sorted."""
    return dict(sorted(mapping.items()))
