"""The OpenADR 3.0.1 OpenAPI document as validators: request bodies, responses and component schemas.

OpenAPI 3.0 schemas are JSON Schema draft 4 with a few additions; this module turns them into plain draft 4
(``nullable: true`` becomes a ``"null"`` member of ``type``; ``discriminator`` and ``example`` are dropped)
and validates with ``jsonschema_rs`` (installed with schemathesis), formats included (``date-time``,
``uri``). Validators are built once per schema and cached. Pure apart from reading the vendored YAML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

SPEC_PATH = Path(__file__).with_name("openadr3.yaml")
_DROP = frozenset({"discriminator", "example", "examples", "xml", "externalDocs", "deprecated", "readOnly",
                   "writeOnly"})


def to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema (or any node of the document) rewritten as JSON Schema draft 4."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {key: to_json_schema(value) for key, value in node.items()
                           if key not in _DROP and key != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*kinds, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _path_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


class OpenApiSpec:
    """Validators for one OpenAPI document (by default the vendored OpenADR 3.0.1 one)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        """Convert the document once; validators are created lazily per schema."""
        self.document = document
        self._converted: dict[str, Any] = to_json_schema(document)
        self._components = self._converted.get("components", {})
        self._paths: dict[str, Any] = self._converted.get("paths", {})
        self._templates = [(template, _path_regex(template)) for template in self._paths]
        self._validators: dict[int, jsonschema_rs.Draft4Validator] = {}

    @property
    def version(self) -> str:
        """The API version the document describes (``info.version``)."""
        return str(self.document.get("info", {}).get("version", "?"))

    def match_path(self, path: str) -> str | None:
        """The path template (``/events/{eventID}``) that ``path`` (``/events/e1``) matches, if any."""
        return next((template for template, regex in self._templates if regex.match(path)), None)

    def _validator(self, schema: Mapping[str, Any]) -> jsonschema_rs.Draft4Validator:
        key = id(schema)
        if key not in self._validators:
            self._validators[key] = jsonschema_rs.Draft4Validator(
                {**schema, "components": self._components}, validate_formats=True)
        return self._validators[key]

    def _errors(self, schema: Mapping[str, Any], instance: Any) -> list[str]:
        return [f"{'/'.join(str(p) for p in error.instance_path) or '(root)'}: {error.message}"
                for error in self._validator(schema).iter_errors(instance)]

    def schema_errors(self, name: str, instance: Any) -> list[str]:
        """Problems of ``instance`` against ``components/schemas/{name}`` (empty when valid)."""
        schema = self._components.get("schemas", {}).get(name)
        if schema is None:
            raise KeyError(f"the OpenAPI document has no schema {name!r}")
        return self._errors(schema, instance)

    def _operation(self, method: str, template: str) -> Mapping[str, Any]:
        operation = self._paths.get(template, {}).get(method.lower())
        if operation is None:
            raise KeyError(f"the OpenAPI document has no operation {method.upper()} {template}")
        return operation  # type: ignore[no-any-return]

    def has_operation(self, method: str, template: str) -> bool:
        """True when the document defines ``method`` on ``template``."""
        return method.lower() in self._paths.get(template, {})

    def request_errors(self, method: str, template: str, body: Any,
                       content_type: str = "application/json") -> list[str]:
        """Problems of a request body for the operation (empty when valid or when it takes no body)."""
        request = self._operation(method, template).get("requestBody")
        if request is None:
            return [] if body is None else ["(root): this operation takes no request body"]
        media = request.get("content", {}).get(content_type)
        if media is None:
            return [f"(root): content type {content_type} is not accepted here"]
        if body is None:
            return ["(root): a request body is required"] if request.get("required") else []
        return self._errors(media["schema"], body)

    def query_errors(self, method: str, template: str, query: Mapping[str, list[str]]) -> list[str]:
        """Problems of the query parameters (unknown names, values that do not fit their schema)."""
        params = {p["name"]: p for p in self._operation(method, template).get("parameters", [])
                  if p.get("in") == "query"}
        problems: list[str] = []
        for name, values in query.items():
            param = params.get(name)
            if param is None:
                problems.append(f"{name}: unknown query parameter")
                continue
            schema = param.get("schema", {})
            if schema.get("type") == "array":
                problems.extend(self._errors(schema, list(values)))
                continue
            for raw in values:
                value: Any = raw
                if schema.get("type") == "integer":
                    try:
                        value = int(raw)
                    except ValueError:
                        problems.append(f"{name}: {raw!r} is not an integer")
                        continue
                problems.extend(f"{name}: {p}" for p in self._errors(schema, value))
        return problems

    def response_errors(self, method: str, template: str, status: int, body: Any) -> list[str]:
        """Problems of a response: a status the operation does not declare, or a body off its schema."""
        responses = self._operation(method, template).get("responses", {})
        declared = responses.get(str(status))
        if declared is None:
            return [f"(root): status {status} is not declared for {method.upper()} {template}"]
        media = declared.get("content", {}).get("application/json")
        if media is None:
            return []
        return self._errors(media["schema"], body)

    def callback_errors(self, body: Any) -> list[str]:
        """Problems of a subscription notification (the ``notification`` schema)."""
        return self.schema_errors("notification", body)


@cache
def openadr3_spec() -> OpenApiSpec:
    """The vendored OpenADR 3.0.1 document, loaded once."""
    return OpenApiSpec(yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8")))
