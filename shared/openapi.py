"""OpenAPI documents that tell the truth about errors.

Every error is problem+json, so each operation documents its 422 that way, plus what any endpoint
can answer: 413 (body too large), 429 (rate limited) and 503 (a dependency is down, with Retry-After),
and, where it takes a body, 400 (the body breaks a business rule).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from shared.problems import PROBLEM_JSON, Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ALWAYS = {
    "413": "Request body too large",
    "429": "Rate limit exceeded; see Retry-After",
    "503": "A dependency is unavailable; retry after Retry-After seconds",
}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """Generate (once) the app's OpenAPI document with every error answer documented as problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(Problem.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}))
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _problem_response("Validation failed; `errors` names each field")
            for status, description in _ALWAYS.items():
                responses.setdefault(status, _problem_response(description))
            if "requestBody" in operation:
                responses.setdefault("400", _problem_response("The request breaks a business rule"))
            for status, response in responses.items():
                if status[0] in "45" and PROBLEM_JSON not in response.get("content", {}):
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = schema
    return schema
