"""The OpenAPI 3.1 document of the JSON API (``/api/openapi.json``), written by hand to match
hypersearch/dashboard/api.py.

`ROUTES` is the whole API as one table: method, path, summary, the 200 answer, the arguments and
the request body. What every route shares is derived from the table, not repeated in it: the
error answers (the one error shape, with the status codes a route can give: 404 where the path
names a study or trial, 403/405 on mutating routes, 401/421/422/503 everywhere) and the token
(the bearer header or the ``hs_token`` cookie: always required on POST, optional on GET, where
the dashboard asks for it only when it was started with --token-file or on a non-loopback
address). tests/test_dashboard_schema.py fuzzes the app against this document with schemathesis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hypersearch.dashboard.api import MAX_NOTE
from hypersearch.dashboard.files import MAX_FILES
from hypersearch.storage.base import MAX_STUDY_NAME_CHARS, STUDY_NAME_RULE
from hypersearch.study import read

# -- JSON Schema pieces -------------------------------------------------------------------------

_NUM = {"type": ["number", "string", "null"],
        "description": "a number; the strings 'inf'/'-inf' for infinities, null for NaN"}
_FINITE = {"type": "number"}
_TIME = {"type": ["number", "null"], "description": "seconds since the epoch"}
_TEXT = {"type": ["string", "null"]}
_STR = {"type": "string"}
_INT = {"type": "integer"}
_INT_OR_NULL = {"type": ["integer", "null"]}
_BOOL = {"type": "boolean"}
_ANY_OBJECT = {"type": "object"}
_STATE = {"enum": list(read.STATES)}
_OK = {"const": True}


def _obj(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    """An object with these properties, all required but the `optional` ones."""
    return {"type": "object", "properties": properties,
            "required": [k for k in properties if k not in optional]}


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"status": _INT, "message": _STR})}),
    "Study": _obj({
        "name": _STR, "direction": {"enum": ["minimize", "maximize"]},
        "metric": _TEXT, "strategy": _STR, "scheduler": _TEXT, "message": _TEXT,
        "created_at": _TIME, "version": _INT, "n_trials": _INT,
        "counts": {"type": "object", "additionalProperties": _INT,
                   "description": "trials per state, every state present"},
        "running": _INT, "best_number": _INT_OR_NULL, "best_value": _NUM,
        "started_at": _TIME, "last_finished_at": _TIME,
    }),
    "Studies": _obj({"studies": _list(_ref("Study"))}),
    "Version": _obj({
        "version": {**_INT, "description": "changes when a trial is created, claimed or "
                    "finished, or the definition changes"},
        "reports": {**_INT, "description": "changes when a running trial reports a metric"},
        "running": _INT,
    }),
    "Trial": _obj({
        "number": _INT, "state": _STATE, "value": _NUM,
        "params": _ANY_OBJECT, "metrics": _ANY_OBJECT,
        "failure_reason": _TEXT, "started_at": _TIME, "finished_at": _TIME,
        "duration": {"type": ["number", "null"]}, "host": _TEXT, "worker": _TEXT, "gpus": _TEXT,
        "parent_number": _INT_OR_NULL,
        "lineage": {"type": ["object", "null"]},
    }),
    "TrialPage": _obj({
        "study": _STR, "total": _INT, "offset": _INT, "limit": _INT,
        "sort": _STR, "order": {"enum": ["asc", "desc"]},
        "states": _list(_STR),
        "param_names": _list(_STR),
        "trials": _list(_ref("Trial")),
    }),
    "TrialDetail": {"allOf": [
        _ref("Trial"),
        _obj({"failure_detail": _TEXT, "user_attrs": _ANY_OBJECT, "created_at": _TIME}),
    ]},
    "Logs": _obj({
        "lines": _list(_obj({"stream": {"enum": ["stdout", "stderr"]}, "seq": _INT,
                             "text": _STR})),
        "next_after": {"type": "object", "additionalProperties": _INT},
        "more": _BOOL, "finished": _BOOL,
    }),
    "Series": _obj({
        "study": _STR, "metric": _STR,
        "metrics": {**_list(_STR), "description": "every metric name the study reported"},
        "series": _list(_obj({
            "number": _INT, "state": _STATE,
            "steps": _list(_INT_OR_NULL),
            "values": _list(_NUM),
        })),
    }),
    "History": _obj({
        "direction": {"enum": ["minimize", "maximize"]},
        "points": _list(_obj({"number": _INT, "value": _FINITE, "best": _FINITE})),
    }),
    "Points": _obj({
        "total": {**_INT, "description": "matching trials, also those past the limit"},
        "params": _list(_obj({
            "name": _STR, "kind": {"enum": ["float", "int", "choice", "other"]}, "log": _BOOL,
            "options": {"type": ["array", "null"]},
            "low": {"type": ["number", "null"]}, "high": {"type": ["number", "null"]},
        })),
        "trials": _list(_obj({"number": _INT, "value": _NUM, "params": _ANY_OBJECT})),
    }),
    "Importance": _obj({
        "method": _STR, "n_trials": _INT,
        "importance": {**_list(_obj({"name": _STR, "importance": _FINITE})),
                       "description": "sorted descending, summing to 1 (all 0 when no parameter "
                       "explains anything); empty with fewer than 4 completed trials"},
    }),
    "Timeline": _obj({"trials": _list(_obj({
        "number": _INT, "state": _STATE, "host": _TEXT, "worker": _TEXT,
        "started_at": _TIME, "finished_at": {**_TIME, "description": "null while running"},
    }))}),
    "Definition": _obj({
        "definition": {**_ANY_OBJECT, "description": "the stored study document"},
        "revisions": _list(_obj({
            "time": _FINITE,
            "changes": {"type": "object", "description": "setting -> [old, new]",
                        "additionalProperties": {"type": "array", "minItems": 2,
                                                 "maxItems": 2}},
        })),
    }),
    "Files": _obj({
        "root": {**_TEXT, "description": "the trial's output folder (null: it has none)"},
        "files": _list(_obj({
            "id": {**_STR, "description": "opaque, issued by this listing; the only way to "
                   "download a file"},
            "path": {**_STR, "description": "relative to the root"},
            "size": _INT,
        })),
        "more": {**_BOOL, "description": "files were left out (the listing is bounded)"},
    }),
    "Notes": _obj({"notes": _list(_obj({"text": _STR, "created_at": _FINITE}))}),
    "Ok": _obj({"ok": _OK}),
    "Enqueued": _obj({"ok": _OK, "number": _INT}),
    "BudgetChanged": _obj({
        "ok": _OK,
        "changes": {"type": "object", "description": "setting -> [old, new]",
                    "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2}},
    }),
    # request bodies
    "EnqueueBody": _obj({"params": {**_ANY_OBJECT, "description": "nested parameter values, "
                                    "validated against the study's space"}}),
    "EnqueueForm": _obj({"params": {**_STR, "description": "the params object as JSON"}}),
    "BudgetBody": {**_obj({
        "max_trials": {"type": ["integer", "null"], "minimum": 1,
                       "description": "the study's total budget; null or absent: unchanged"},
        "max_time": {"type": ["number", "null"], "exclusiveMinimum": 0,
                     "description": "seconds; null or absent: unchanged"},
    }, "max_trials", "max_time"), "additionalProperties": False},
    "BudgetForm": {**_obj({
        "max_trials": {"type": "string", "pattern": r"^[0-9]*$",
                       "description": "a positive integer; empty: unchanged"},
        "max_time": {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?)?$",
                     "description": "seconds; empty: unchanged"},
    }, "max_trials", "max_time"), "additionalProperties": False},
    "NoteBody": _obj({"text": {**_STR, "minLength": 1, "maxLength": MAX_NOTE,
                               "description": "stored without surrounding whitespace"}}),
}


# -- arguments ----------------------------------------------------------------------------------


def _query(name: str, schema: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    # allowEmptyValue: an empty argument means its default (the pages' forms send empty fields)
    return {"name": name, "in": "query", "required": False, "allowEmptyValue": True,
            "schema": schema, "description": text, **extra}


def _int(low: int, high: int | None, default: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low,
                              "maximum": read.MAX_INT if high is None else high}
    if default is not None:
        schema["default"] = default
    return schema


# the path's {placeholders}; every route naming one of these gets it
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "name": {"name": "name", "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_STUDY_NAME_CHARS,
                        "pattern": r"^[^/\\\x00-\x1f\x7f-\x9f\u2028\u2029]+$"},
             "description": "the study name: " + STUDY_NAME_RULE},
    "number": {"name": "number", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 0, "maximum": read.MAX_INT},
               "description": "the trial number"},
    "id": {"name": "id", "in": "path", "required": True, "schema": _STR,
           "description": "a file id from the trial's /files listing (never a path)"},
}

_STATES = _query(
    "state", _list({"enum": [s.lower() for s in read.STATES]}),
    "states to keep (all when absent), repeated or comma-separated",
    style="form", explode=True,
)
_SORT = _query("sort", {"type": "string", "default": "number"},
               "number, value, duration, state, a parameter NAME or params.NAME")
_ORDER = _query("order", {"enum": ["asc", "desc"], "default": "asc"},
                "trials without the sorted value come last in either order")
_OFFSET = _query("offset", _int(0, None, 0), "matching trials to skip")
_RANGES = _query(
    "ranges",
    {"type": "object",
     "propertyNames": {"pattern": r"^(min|max)\..+$"},
     "additionalProperties": {"type": "number"}},
    "inclusive ranges, each its own argument: min.FIELD=x and max.FIELD=y, where FIELD is "
    "value, duration, a parameter name or metrics.NAME (a final metric); either bound may be "
    "omitted",
    style="form", explode=True,
)


_FILTER = (_STATES, _RANGES)  # which trials: /trials and /export (/points: COMPLETE ones)
_ORDERING = (_SORT, _ORDER)


# -- the table ----------------------------------------------------------------------------------

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_ATTACHMENT = {"Content-Disposition": {
    "required": True, "description": "attachment; filename=...",
    "schema": {"type": "string", "pattern": "^attachment"}}}


@dataclass(frozen=True)
class Op:
    """One operation: `answer` names the 200 JSON schema, or is a ready `content` mapping (a
    download); `body` names the JSON body's schema and `form` the form-encoded one."""

    method: str
    path: str  # below /api/v1
    summary: str
    answer: str | dict[str, Any]
    params: tuple[dict[str, Any], ...] = ()
    body: str | None = None
    form: str | None = None

    @property
    def mutating(self) -> bool:
        return self.method != "get"


S = "/studies/{name}"
T = S + "/trials/{number}"

ROUTES: tuple[Op, ...] = (
    Op("get", "/studies", "Every study with counts by state and best value", "Studies"),
    Op("get", S, "One study", "Study"),
    Op("get", S + "/version", "Cheap numbers to poll: refetch the rest when one changes",
       "Version"),
    Op("get", S + "/trials", "A page of the study's trials, sorted and filtered", "TrialPage", (
        *_FILTER, *_ORDERING, _OFFSET,
        _query("limit", _int(1, read.MAX_PAGE, read.DEFAULT_PAGE), "trials per page"),
    )),
    Op("get", T, "One trial", "TrialDetail"),
    Op("get", T + "/logs", "The trial's output lines past `after`", "Logs", (
        _query("after", _int(-1, None, -1),
               "the last seq already seen (seq numbers are per stream)"),
        _query("stream", {"enum": ["stdout", "stderr"]}, "one stream only"),
        _query("limit", _int(1, read.MAX_LOG_LINES, read.MAX_LOG_LINES), "lines at most"),
    )),
    Op("get", S + "/series", "A reported metric of many trials, downsampled", "Series", (
        _query("metric", _STR, "the metric (default: the study's metric, else 'value')"),
        _query("trials", {"type": "string", "pattern": r"^[0-9, ]*$"},
               f"comma-separated trial numbers, at most {read.MAX_SERIES_TRIALS} (default: "
               f"the latest {read.MAX_SERIES_TRIALS} that reported)"),
        _query("max_points", _int(1, read.MAX_POINTS, read.DEFAULT_POINTS),
               "points per trial at most"),
    )),
    Op("get", S + "/history", "Values of the COMPLETE trials with the best so far", "History", (
        _query("max_points", _int(1, read.MAX_POINTS, read.MAX_POINTS),
               "points at most (evenly spaced; the best so far counts every trial)"),
    )),
    Op("get", S + "/points", "Parameters and values of the latest matching COMPLETE trials "
       "(parallel coordinates, slice, contour)", "Points", (
        _RANGES,
        _query("limit", _int(1, read.MAX_SEARCH_POINTS, read.DEFAULT_SEARCH_POINTS),
               "trials at most"),
    )),
    Op("get", S + "/importance", "Parameter importance (needs 4 completed trials)",
       "Importance"),
    Op("get", S + "/timeline", "When and where the latest started trials ran", "Timeline", (
        _query("limit", _int(1, read.MAX_TIMELINE, read.MAX_TIMELINE), "trials at most"),
    )),
    Op("get", S + "/definition", "The stored study definition and its revisions",
       "Definition"),
    Op("get", S + "/export", f"The matching trials (at most {read.MAX_EXPORT}) as a CSV or JSON "
       "download: number, state, value, duration, params.NAME..., metrics.NAME...",
       {"text/csv": {"schema": _STR}, _JSON: {"schema": _list(_ANY_OBJECT)}}, (
        _query("format", {"enum": ["csv", "json"], "default": "csv"}, "the file format"),
        *_FILTER, *_ORDERING,
    )),
    Op("get", T + "/files", f"The files of the trial's output folder (at most {MAX_FILES}; "
       "symbolic links are not listed)", "Files"),
    Op("get", T + "/files/{id}", "One file of the listing, by the id it issued",
       {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}),
    Op("get", T + "/notes", "The trial's notes, oldest first", "Notes"),
    Op("post", T + "/notes", "Add a note to the trial", "Ok", body="NoteBody", form="NoteBody"),
    Op("post", S + "/stop", "Ask every worker to stop the study", "Ok"),
    Op("post", T + "/stop", "Stop the trial at its next report: it ends PRUNED, its curve kept",
       "Ok"),
    Op("post", S + "/enqueue", "Queue a configuration (validated against the space; 422 with "
       "the validation message when it does not fit)", "Enqueued",
       body="EnqueueBody", form="EnqueueForm"),
    Op("post", S + "/budget", "Change max_trials and max_time of the stored definition",
       "BudgetChanged", body="BudgetBody", form="BudgetForm"),
)

# -- what every route shares --------------------------------------------------------------------

ERRORS: dict[str, str] = {
    "401": "the token is missing or wrong: mutating routes always need it, reads only when "
           "the dashboard was started with --token-file or on a non-loopback address",
    "403": "a cross-site request: its Origin header names another site",
    "404": "no such study, trial or file",
    "405": "the dashboard runs with --read-only",
    "421": "the Host header is not this dashboard's address (DNS rebinding)",
    "422": "an argument out of range; the message names the accepted values",
    "503": "the storage is busy or unreachable; try again later",
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "the token, as printed in the login link at start"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "hs_token",
               "description": "set by /login?token=TOKEN"},
}
_TOKEN = [{"bearer": []}, {"cookie": []}]


def _errors(op: Op) -> list[str]:
    codes = ["401", "421", "422", "503"]
    if "{" in op.path:
        codes.append("404")
    if op.mutating:
        codes += ["403", "405"]
    return sorted(codes)


def _operation(op: Op) -> dict[str, Any]:
    placeholders = re.findall(r"\{(\w+)\}", op.path)
    ok: dict[str, Any] = {"description": "OK"}
    if isinstance(op.answer, str):
        ok["content"] = {_JSON: {"schema": _ref(op.answer)}}
    else:
        ok["content"] = op.answer
        ok["headers"] = _ATTACHMENT
    out: dict[str, Any] = {
        "operationId": op.method + re.sub(r"\W+", "_", op.path).rstrip("_"),
        "summary": op.summary,
        "parameters": [PATH_PARAMS[p] for p in placeholders] + list(op.params),
        "responses": {"200": ok, **{code: {"$ref": f"#/components/responses/{code}"}
                                    for code in _errors(op)}},
        # {}: reads need no token unless the dashboard was started with one
        "security": _TOKEN if op.mutating else [{}, *_TOKEN],
    }
    if op.body or op.form:
        content = {}
        if op.body:
            content[_JSON] = {"schema": _ref(op.body)}
        if op.form:
            content[_FORM] = {"schema": _ref(op.form)}
        out["requestBody"] = {"required": True, "content": content}
    return out


def document() -> dict[str, Any]:
    """The OpenAPI document served at /api/openapi.json."""
    paths: dict[str, dict[str, Any]] = {}
    for op in ROUTES:
        paths.setdefault("/api/v1" + op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hypersearch dashboard API",
            "version": "1",
            "description": (
                "Views of stored studies (every answer bounded) and the dashboard's controls. "
                "Errors are {\"error\": {\"status\": int, \"message\": str}}. Mutating routes "
                "(POST) always need the token, as 'Authorization: Bearer TOKEN' or the hs_token "
                "cookie set by /login?token=TOKEN, and refuse cross-site Origins; reads need it "
                "only when the dashboard was started with --token-file or on a non-loopback "
                "address."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {code: {"description": text,
                                 "content": {_JSON: {"schema": _ref("Error")}}}
                          for code, text in ERRORS.items()},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
