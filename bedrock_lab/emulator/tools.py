"""Tool calls: a JSON-schema instance generated deterministically, and when a request gets one.

A client that binds a tool (structured output in langchain-aws, strands-agents, pydantic-ai; an agent loop) parses
the ``input`` of the ``toolUse`` block it gets back, so the input must validate against the tool's
``inputSchema.json``: objects with their required (and some optional) properties, the JSON types, ``enum`` /
``const``, arrays within ``minItems`` / ``maxItems``, nested objects, numbers within ``minimum`` / ``maximum``
(exclusive ones too, ``multipleOf`` for integers), strings within ``minLength`` / ``maxLength`` with the common
``format`` values (date-time, date, time, email, uri, uuid, ipv4), local ``$ref`` (``#/$defs/..``,
``#/definitions/..``), ``anyOf`` / ``oneOf`` (the first branch), ``allOf`` (merged). ``pattern`` is not
honoured (a fixed string is returned), nor ``not`` / ``if``.

The values come from ``random.Random(key)`` where the key is derived from the request's content, so the same
request always gets the same tool input.

When the model calls a tool (a deterministic rule, docs/emulator.md): toolChoice ``any`` or ``tool`` always;
``auto`` (the default) when the last user turn carries no toolResult -- after a tool result it answers in text.
"""

from __future__ import annotations

import math
import random
import string
from typing import Any

_WORDS = ("alpha", "bravo", "delta", "echo", "lima", "nova", "oscar", "tango", "kilo", "zulu")
_MAX_DEPTH = 8  #: nested schemas deeper than this get the simplest value of their type


def schema_instance(schema: object, rng: random.Random) -> Any:
    """A value valid against ``schema`` (a JSON schema dict), drawn from ``rng``."""
    root = schema if isinstance(schema, dict) else {}
    return _value(root, root, rng, 0)


def _resolve(s: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(s.get("$ref"), str) and seen < 16:
        ref = s["$ref"]
        node: Any = root
        if ref.startswith("#"):
            for part in ref.lstrip("#").strip("/").split("/"):
                if not part:
                    continue
                node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        s = node if isinstance(node, dict) else {}
        seen += 1
    return s


def _merge_all_of(s: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    parts = s.get("allOf")
    if not isinstance(parts, list):
        return s
    out = {k: v for k, v in s.items() if k != "allOf"}
    for p in parts:
        p = _resolve(p, root) if isinstance(p, dict) else {}
        for k, v in p.items():
            if k == "properties" and isinstance(v, dict):
                out["properties"] = {**out.get("properties", {}), **v}
            elif k == "required" and isinstance(v, list):
                out["required"] = [*out.get("required", []), *v]
            else:
                out.setdefault(k, v)
    return out


def _value(s: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int) -> Any:
    s = _merge_all_of(_resolve(s, root), root)
    if "const" in s:
        return s["const"]
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    for key in ("anyOf", "oneOf"):
        branches = s.get(key)
        if isinstance(branches, list) and branches:
            first = next((b for b in branches if isinstance(b, dict) and b.get("type") != "null"), branches[0])
            return _value(first if isinstance(first, dict) else {}, root, rng, depth + 1)
    t = s.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t is None:
        t = "object" if "properties" in s else "array" if "items" in s else "string"
    if t == "object":
        return _object(s, root, rng, depth)
    if t == "array":
        return _array(s, root, rng, depth)
    if t == "integer":
        return _integer(s, rng)
    if t == "number":
        return _number(s, rng)
    if t == "boolean":
        return rng.random() < 0.5
    if t == "null":
        return None
    return _string(s, rng)


def _object(s: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    props: dict[str, Any] = s["properties"] if isinstance(s.get("properties"), dict) else {}
    required = [r for r in s.get("required", []) if isinstance(r, str)] if isinstance(s.get("required"), list) else []
    out: dict[str, Any] = {}
    if depth >= _MAX_DEPTH:
        names = required
    else:  # every required property, and each optional one with probability 1/2
        names = [n for n in props if n in required or rng.random() < 0.5] + [n for n in required if n not in props]
    for name in names:
        sub = props.get(name)
        out[name] = _value(sub if isinstance(sub, dict) else {}, root, rng, depth + 1)
    lo = s["minProperties"] if isinstance(s.get("minProperties"), int) else 0
    extra = s.get("additionalProperties")
    k = 0
    while len(out) < lo and k < 1000:
        name = f"extra_{k}"
        k += 1
        if name in out:
            continue
        if extra is False:  # nothing else allowed: use the optional properties
            rest = [n for n in props if n not in out]
            if not rest:
                break
            name = rest[0]
            out[name] = _value(props[name] if isinstance(props[name], dict) else {}, root, rng, depth + 1)
            continue
        out[name] = _value(extra if isinstance(extra, dict) else {"type": "string"}, root, rng, depth + 1)
    return out


def _array(s: dict[str, Any], root: dict[str, Any], rng: random.Random, depth: int) -> list[Any]:
    lo: int = s["minItems"] if isinstance(s.get("minItems"), int) else 0
    hi: int = s["maxItems"] if isinstance(s.get("maxItems"), int) else max(lo, 3)
    n = lo if depth >= _MAX_DEPTH else rng.randint(lo, max(lo, min(hi, lo + 3)))
    prefix: list[Any] = s["prefixItems"] if isinstance(s.get("prefixItems"), list) else []
    items: dict[str, Any] = s["items"] if isinstance(s.get("items"), dict) else {}
    out = [_value(prefix[i] if i < len(prefix) and isinstance(prefix[i], dict) else items, root, rng, depth + 1)
           for i in range(n)]  # fmt: skip
    if s.get("uniqueItems") and len({repr(v) for v in out}) < len(out):
        out = list({repr(v): v for v in out}.values())  # duplicates dropped (may go below minItems: rare)
    return out


def _bounds(s: dict[str, Any]) -> tuple[float | None, float | None, bool, bool]:
    lo, hi = s.get("minimum"), s.get("maximum")
    xlo, xhi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
    lo_open = hi_open = False
    if isinstance(xlo, int | float) and not isinstance(xlo, bool):
        lo, lo_open = xlo, True
    elif xlo is True:
        lo_open = True
    if isinstance(xhi, int | float) and not isinstance(xhi, bool):
        hi, hi_open = xhi, True
    elif xhi is True:
        hi_open = True
    num = (int, float)
    return (lo if isinstance(lo, num) else None, hi if isinstance(hi, num) else None, lo_open, hi_open)


def _integer(s: dict[str, Any], rng: random.Random) -> int:
    lo, hi, lo_open, hi_open = _bounds(s)
    a0 = None if lo is None else math.ceil(lo) + (1 if lo_open and float(lo).is_integer() else 0)
    b0 = None if hi is None else math.floor(hi) - (1 if hi_open and float(hi).is_integer() else 0)
    a = a0 if a0 is not None else (b0 - 100 if b0 is not None else 0)
    b = b0 if b0 is not None else a + 100
    if b < a:  # contradictory bounds: the lower one
        b = a
    m = s.get("multipleOf")
    if isinstance(m, int) and not isinstance(m, bool) and m > 0:
        first = -(-a // m) * m
        if first <= b:
            return first + m * rng.randint(0, (b - first) // m)
    return rng.randint(a, b)


def _number(s: dict[str, Any], rng: random.Random) -> float:
    lo, hi, _, _ = _bounds(s)
    a = float(lo) if lo is not None else (float(hi) - 100.0 if hi is not None else 0.0)
    b = float(hi) if hi is not None else a + 100.0
    if b < a:
        b = a
    x = round(a + (b - a) * (0.05 + 0.9 * rng.random()), 3)  # strictly inside: exclusive bounds hold
    return min(max(x, a), b) if b > a else a


def _string(s: dict[str, Any], rng: random.Random) -> str:
    fmt = s.get("format")
    if fmt == "date-time":
        v = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    elif fmt == "date":
        v = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    elif fmt == "time":
        v = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
    elif fmt == "email":
        v = f"{rng.choice(_WORDS)}{rng.randint(1, 99)}@example.com"
    elif fmt in ("uri", "url", "uri-reference"):
        v = f"https://example.com/{rng.choice(_WORDS)}/{rng.randint(1, 999)}"
    elif fmt == "uuid":
        v = (f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
             f"{0x8000 | rng.getrandbits(14):04x}-{rng.getrandbits(48):012x}")
    elif fmt == "ipv4":
        v = ".".join(str(rng.randint(1, 254)) for _ in range(4))
    else:
        v = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    lo: int = s["minLength"] if isinstance(s.get("minLength"), int) else 0
    hi: int | None = s["maxLength"] if isinstance(s.get("maxLength"), int) else None
    if len(v) < lo:
        v += "".join(rng.choice(string.ascii_lowercase) for _ in range(lo - len(v)))
    if hi is not None and len(v) > hi:
        v = v[:hi]
    return v


def tool_use_id(rng: random.Random, prefix: str = "tooluse_") -> str:
    """An id like Bedrock's (``tooluse_`` + 22 characters; Anthropic bodies use ``toolu_bdrk_`` + 24)."""
    n = 24 if prefix.startswith("toolu_") else 22
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


__all__ = ["schema_instance", "tool_use_id"]
