"""The OpenAPI 3 document of the JSON API, written by hand to match hypersearch/dashboard/api.py
(tests/test_dashboard.py checks every answer against it)."""

from __future__ import annotations

from typing import Any

from hypersearch.study import read

_NUM = {"type": ["number", "string", "null"],
        "description": "a number; the strings 'inf'/'-inf' for infinities, null for NaN"}
_TIME = {"type": ["number", "null"], "description": "seconds since the epoch"}
_TEXT = {"type": ["string", "null"]}
_INT = {"type": "integer"}


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"status": _INT, "message": {"type": "string"}})}),
    "Study": _obj({
        "name": {"type": "string"}, "direction": {"enum": ["minimize", "maximize"]},
        "metric": _TEXT, "strategy": {"type": "string"}, "scheduler": _TEXT, "message": _TEXT,
        "created_at": _TIME, "version": _INT, "n_trials": _INT,
        "counts": {"type": "object", "additionalProperties": _INT,
                   "description": "trials per state, every state present"},
        "running": _INT, "best_number": {"type": ["integer", "null"]}, "best_value": _NUM,
        "started_at": _TIME, "last_finished_at": _TIME,
    }),
    "Studies": _obj({"studies": {"type": "array", "items": {"$ref": "#/components/schemas/Study"}}}),
    "Trial": _obj({
        "number": _INT, "state": {"enum": list(read.STATES)}, "value": _NUM,
        "params": {"type": "object"}, "metrics": {"type": "object"},
        "failure_reason": _TEXT, "started_at": _TIME, "finished_at": _TIME,
        "duration": {"type": ["number", "null"]}, "host": _TEXT, "worker": _TEXT,
        "parent_number": {"type": ["integer", "null"]},
        "lineage": {"type": ["object", "null"]},
    }),
    "TrialPage": _obj({
        "study": {"type": "string"}, "total": _INT, "offset": _INT, "limit": _INT,
        "sort": {"type": "string"}, "order": {"enum": ["asc", "desc"]},
        "states": {"type": "array", "items": {"type": "string"}},
        "param_names": {"type": "array", "items": {"type": "string"}},
        "trials": {"type": "array", "items": {"$ref": "#/components/schemas/Trial"}},
    }),
    "TrialDetail": {"allOf": [
        {"$ref": "#/components/schemas/Trial"},
        _obj({"failure_detail": _TEXT, "user_attrs": {"type": "object"}, "created_at": _TIME}),
    ]},
    "Logs": _obj({
        "lines": {"type": "array", "items": _obj({
            "stream": {"enum": ["stdout", "stderr"]}, "seq": _INT, "text": {"type": "string"}})},
        "next_after": {"type": "object", "additionalProperties": _INT},
        "more": {"type": "boolean"}, "finished": {"type": "boolean"},
    }),
    "Series": _obj({
        "study": {"type": "string"}, "metric": {"type": "string"},
        "series": {"type": "array", "items": _obj({
            "number": _INT,
            "steps": {"type": "array", "items": {"type": ["integer", "null"]}},
            "values": {"type": "array", "items": _NUM},
        })},
    }),
}


def _param(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": text}


_NAME = _param("name", "path", {"type": "string"}, "the study name")
_NUMBER = _param("number", "path", {"type": "integer", "minimum": 0}, "the trial number")


def _get(summary: str, schema: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    def ref(name: str) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

    return {"get": {
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": {"description": "OK", **ref(schema)},
            "404": {"description": "no such study or trial", **ref("Error")},
            "422": {"description": "an argument out of range", **ref("Error")},
        },
    }}


def document() -> dict[str, Any]:
    """The OpenAPI document served at /api/openapi.json."""
    study = "/api/v1/studies/{name}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hypersearch dashboard API",
            "version": "1",
            "description": "Read-only views of stored studies; every answer is bounded.",
        },
        "paths": {
            "/api/v1/studies": _get("Every study with counts by state and best value",
                                    "Studies", []),
            study: _get("One study", "Study", [_NAME]),
            study + "/trials": _get("A page of a study's trials, sorted and filtered", "TrialPage", [
                _NAME,
                _param("state", "query", {"type": "string"},
                       "states to show, comma-separated or repeated: " + ", ".join(read.STATES)),
                _param("sort", "query", {"type": "string", "default": "number"},
                       "number, value, duration, state or a parameter name"),
                _param("order", "query", {"enum": ["asc", "desc"], "default": "asc"},
                       "trials without the sorted value come last in either order"),
                _param("limit", "query", {"type": "integer", "minimum": 1,
                                          "maximum": read.MAX_PAGE, "default": read.DEFAULT_PAGE},
                       "trials per page"),
                _param("offset", "query", {"type": "integer", "minimum": 0, "default": 0},
                       "trials to skip"),
            ]),
            study + "/trials/{number}": _get("One trial", "TrialDetail", [_NAME, _NUMBER]),
            study + "/trials/{number}/logs": _get("A trial's output lines past `after`", "Logs", [
                _NAME, _NUMBER,
                _param("after", "query", {"type": "integer", "minimum": -1, "default": -1},
                       "the last seq already seen (seq numbers are per stream)"),
                _param("stream", "query", {"enum": ["stdout", "stderr"]}, "one stream only"),
                _param("limit", "query", {"type": "integer", "minimum": 1,
                                          "maximum": read.MAX_LOG_LINES,
                                          "default": read.MAX_LOG_LINES}, "lines at most"),
            ]),
            study + "/series": _get("A reported metric of many trials, downsampled", "Series", [
                _NAME,
                _param("metric", "query", {"type": "string"},
                       "the metric (default: the study's metric, else 'value')"),
                _param("trials", "query", {"type": "string"},
                       f"comma-separated trial numbers, at most {read.MAX_SERIES_TRIALS} "
                       f"(default: the latest {read.MAX_SERIES_TRIALS})"),
                _param("max_points", "query", {"type": "integer", "minimum": 1,
                                               "maximum": read.MAX_POINTS,
                                               "default": read.DEFAULT_POINTS},
                       "points per trial at most"),
            ]),
        },
        "components": {"schemas": SCHEMAS},
    }
