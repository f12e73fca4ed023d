"""The explorer's typed requests and its generated OpenAPI document: every field a handler can read is declared by
its request class and documented, the document's ranges and choices are the ones the checks enforce, a result
file outside its list is a 404, and every request body is bounded in size and depth (through the ASGI app here,
through a real server in tests/test_serve.py)."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app, optimize_jobs, options
from cnnviz.explorer.body import DRAIN_BYTES, MAX_DEPTH, MAX_FORM_BYTES, MAX_JSON_BYTES
from cnnviz.explorer.error_pages import is_page
from cnnviz.explorer.fields import Choice, Integer
from cnnviz.explorer.openapi import document
from cnnviz.explorer.requests import RESULT_FILES, Explain
from cnnviz.explorer.routes import ROUTES
from cnnviz.explorer.typed import Ask
from cnnviz.zoo.core import CnnvizError
from tests.conftest import REPO
from tests.explorer.test_pages import error_of

EXPLORER = REPO / "cnnviz" / "explorer"
DOCUMENT = document(ROUTES)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app([zoo.load("fashion_cnn", device="cpu")],
                               cache_dir=tmp_path_factory.mktemp("cache"))) as client:
        yield client


def operations():
    """(route, HTTP method, its operation in the document) for every route."""
    for route in ROUTES:
        for method in sorted(route.methods - {"HEAD"}):
            yield route, method, DOCUMENT["paths"][route.path][method.lower()]


def documented(route, method: str, operation: dict) -> tuple[set[str], set[str]]:
    """The names an operation documents, and those it says are required (path, query and body alike)."""
    names = {p["name"] for p in operation.get("parameters", [])}
    required = {p["name"] for p in operation.get("parameters", []) if p["required"]}
    if "requestBody" in operation:
        schemas = [c["schema"] for c in operation["requestBody"]["content"].values()]
        assert len(schemas) == 2 and schemas[0] == schemas[1]
        names |= set(schemas[0]["properties"])
        required |= set(schemas[0]["required"])
    return names, required


def test_every_route_is_documented_with_exactly_the_fields_of_its_typed_request(client):
    assert client.get("/api/openapi.json").json() == json.loads(json.dumps(document(ROUTES)))  # methods registered since import count too
    for route, method, operation in operations():
        ask = route.endpoint.ask
        assert issubclass(ask, Ask) and set(route.param_convertors) <= set(ask.params()), route.path
        names, required = documented(route, method, operation)
        assert names == set(ask.params()), (route.path, names ^ set(ask.params()))
        assert required == {n for n, p in ask.params().items() if p.required} | set(route.param_convertors), route.path
        where = {p["name"]: p["in"] for p in operation.get("parameters", [])}
        assert {n for n, w in where.items() if w == "path"} == set(route.param_convertors), route.path
        assert method == "GET" or not {n for n, w in where.items() if w == "query"}, route.path


def test_the_fields_the_handlers_read_and_the_document_lacked_are_documented():
    body = DOCUMENT["paths"]["/api/explain"]["post"]["requestBody"]["content"]
    for media in ("application/json", "multipart/form-data"):
        assert {"region", "box"} <= set(body[media]["schema"]["properties"])
    jobs = DOCUMENT["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert jobs["properties"]["round_steps"]["minimum"] == 1


def attribute_reads(source: str, namespace: dict) -> list[tuple[str, str, str]]:
    """(function, typed request class, attribute) of every ``param.attribute`` read in a function whose parameter
    is annotated with a typed request class of ``namespace``."""
    reads = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        typed = {arg.arg: namespace[arg.annotation.id] for arg in function.args.args + function.args.kwonlyargs
                 if isinstance(arg.annotation, ast.Name) and inspect.isclass(namespace.get(arg.annotation.id))
                 and issubclass(namespace[arg.annotation.id], Ask)}
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in typed:
                reads.append((function.name, typed[node.value.id], node.attr))
    return reads


def undocumented_reads(source: str, namespace: dict) -> list[str]:
    """Reads of a field that no route documents for that class (methods of the class are not fields)."""
    fields: dict[type, set[str]] = {}
    for route, method, operation in operations():
        fields.setdefault(route.endpoint.ask, set()).update(documented(route, method, operation)[0])
    return [f"{function} reads {cls.__name__}.{name}" for function, cls, name in attribute_reads(source, namespace)
            if name not in fields.get(cls, set()) and not callable(getattr(cls, name, None))]


def test_a_handler_reads_only_fields_the_document_describes():
    checked = 0
    for path in sorted(EXPLORER.rglob("*.py")):
        module = importlib.import_module("cnnviz." + ".".join(path.relative_to(EXPLORER.parent).with_suffix("").parts))
        source = path.read_text()
        assert undocumented_reads(source, vars(module)) == [], path
        checked += len(attribute_reads(source, vars(module)))
    assert checked > 60  # the walk sees the handlers' reads
    planted = "async def explain(explorer, ask: Explain):\n    return ask.regoin, ask.region\n"
    assert undocumented_reads(planted, {"Explain": Explain}) == ["explain reads Explain.regoin"]


def test_handlers_never_see_the_raw_request():
    for route in ROUTES:
        assert list(inspect.signature(route.endpoint.handler).parameters) == ["explorer", "ask"], route.path
    for path in sorted((EXPLORER / "routes").glob("*.py")):
        assert "starlette.requests" not in path.read_text(), path
    with pytest.raises(AttributeError):
        Explain.decode({"image": "chelsea", "method": "gradcam"}).regoin  # noqa: B018


def typed_fields():
    """(route path, field name, its declaration) of every field of every route."""
    seen = set()
    for route in ROUTES:
        for name, declared in route.endpoint.ask.params().items():
            if (route.endpoint.ask, name) not in seen:
                seen.add((route.endpoint.ask, name))
                yield route.endpoint.ask, name, declared


def valid(name: str, declared) -> object:
    """A value a required field accepts."""
    if isinstance(declared.kind, Integer):
        return 1
    if isinstance(declared.kind, Choice):
        return declared.kind.values[0]
    return {"key": "0" * 32, "models": ["a", "b"]}.get(name, "chelsea")


def test_the_documented_ranges_and_choices_are_the_ones_checked():
    """Each integer field accepts its documented ends and refuses one past them; each choice field accepts
    every documented choice and refuses any other; a required field left out is refused."""
    ranged = chosen = 0
    for ask, name, declared in typed_fields():
        others = {n: valid(n, p) for n, p in ask.params().items() if p.required and n != name}
        schema = declared.kind.schema()
        if isinstance(declared.kind, Integer):
            ranged += 1
            for end, step in (("minimum", -1), ("maximum", 1)):
                if end in schema:
                    assert ask.decode({**others, name: schema[end]}).__getattribute__(name) == schema[end]
                    with pytest.raises(CnnvizError):
                        ask.decode({**others, name: schema[end] + step})
        if isinstance(declared.kind, Choice):
            chosen += 1
            assert [ask.decode({**others, name: v}).__getattribute__(name) for v in schema["enum"]] == schema["enum"]
            with pytest.raises(CnnvizError):
                ask.decode({**others, name: "".join(schema["enum"]) + "x"})
        if declared.required:
            with pytest.raises(CnnvizError, match=f"^{name} .*none was given"):
                ask.decode(others)
    assert ranged >= 8 and chosen >= 2


def test_each_methods_options_are_documented_as_the_explorer_checks_them():
    schemas = DOCUMENT["components"]["schemas"]
    explain = DOCUMENT["paths"]["/api/explain"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    by_method = {c["if"]["properties"]["method"]["const"]: c["then"]["properties"]["options"]["$ref"].split("/")[-1]
                 for c in explain["allOf"]}
    occlusion = schemas[by_method["occlusion"]]["properties"]
    assert occlusion["window"]["minimum"] == 1 and "black" in occlusion["fill"]["enum"]
    optimize = DOCUMENT["paths"]["/api/optimize"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {c["if"]["properties"]["method"]["const"] for c in optimize["allOf"]} == {"invert", "dream", "pgd"}


def test_a_result_file_outside_its_list_is_a_404_of_one_line(client):
    key = client.post("/api/explain", json={"image": "chelsea", "method": "gradient"}).json()["key"]
    assert all(client.get(f"/api/results/{key}/{name}").status_code == 200 for name in RESULT_FILES)
    for name in ("secret.txt", "record.jsonx", "map.NPY", "app.py", "panel"):
        answer = client.get(f"/api/results/{key}/{name}")
        assert answer.status_code == 404, (name, answer.text)
        assert "\n" not in answer.json()["error"] and name in answer.json()["error"]
    assert client.get(f"/api/results/{'f' * 32}/map.npy").status_code == 404  # a key that names nothing kept
    assert client.get("/api/results/not-a-key/map.npy").status_code == 404


def nested(levels: int) -> bytes:
    return b'{"image": "chelsea", "method": "gradient", "extra": ' + b"[" * levels + b"]" * levels + b"}"


def assert_one_line(answer, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    page = is_page(answer.request.method, answer.request.url.path)  # a page's error is a page, the API's JSON
    error = error_of(answer) if page else answer.json()["error"]
    assert words in error and "\n" not in error and "Traceback" not in error, error


@pytest.mark.parametrize("path", ["/api/explain", "/api/predict", "/api/jobs", "/api/compare", "/api/upload"])
def test_a_50000_deep_body_gets_a_400_on_every_route(client, path):
    answer = client.post(path, content=nested(50_000), headers={"content-type": "application/json"})
    assert_one_line(answer, 400, "nested")
    assert client.get("/api/health").json()["status"] == "ok"


def test_the_depth_limit_is_exact(client):
    headers = {"content-type": "application/json"}
    assert client.post("/api/explain", content=nested(MAX_DEPTH - 1), headers=headers).status_code == 200
    assert_one_line(client.post("/api/explain", content=nested(MAX_DEPTH), headers=headers), 400,
                    f"nested {MAX_DEPTH + 1} deep")
    deep_options = "[" * 50_000 + "]" * 50_000
    form = {"method": (None, "gradient"), "image": (None, "chelsea"), "options": (None, deep_options)}
    assert_one_line(client.post("/api/explain", files=form), 400, "options is nested")
    deep_query = "[" * 5_000 + "]" * 5_000  # as deep as a URL can carry
    assert_one_line(client.get("/m/fashion_cnn/image/chelsea/explain/gradient", params={"options": deep_query}),
                    400, "options is nested")


def test_a_40_mb_body_gets_a_413_declared_or_not(client):
    big = b'{"image": "' + b"a" * (40 * 2**20) + b'"}'
    headers = {"content-type": "application/json"}
    assert_one_line(client.post("/api/explain", content=big, headers=headers), 413, f"{MAX_JSON_BYTES:,} accepted")
    chunks = (big[i:i + 2**20] for i in range(0, len(big), 2**20))  # no Content-Length: counted as it arrives
    assert_one_line(client.post("/api/predict", content=chunks, headers=headers), 413, f"{MAX_JSON_BYTES:,} accepted")
    just_over = b'{"image": "' + b"a" * (MAX_JSON_BYTES - 12) + b'"}'
    assert len(just_over) == MAX_JSON_BYTES + 1
    assert_one_line(client.post("/api/predict", content=just_over, headers=headers), 413, "accepted")
    assert_one_line(client.post("/api/predict", content=just_over.replace(b"aa", b"a", 1), headers=headers), 400,
                    "unknown image")
    form = client.post("/api/upload", files={"image": ("big.png", b"\0" * MAX_FORM_BYTES, "image/png")})
    assert_one_line(form, 413, f"{MAX_FORM_BYTES:,} accepted")
    assert DRAIN_BYTES > 40 * 2**20  # so a real client still sending 40 MB reads the 413


def test_the_document_is_valid_openapi():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(json.loads(json.dumps(DOCUMENT)))


def body_validator(path: str):
    from jsonschema import Draft202012Validator

    schema = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


AGREED = [  # (route, body, whether the explorer takes it): the document and the checks must say the same
    ("/api/explain", {"image": "chelsea", "method": "occlusion", "options": {"window": 8, "fill": "black"}}, True),
    ("/api/explain", {"image": "chelsea", "method": "occlusion", "options": {"window": 0}}, False),
    ("/api/explain", {"image": "chelsea", "method": "occlusion", "options": {"windows": 3}}, False),
    ("/api/explain", {"image": "chelsea", "method": "gradcam", "options": {"upsample": "yes"}}, False),
    ("/api/explain", {"image": "chelsea", "method": "gradcam", "target": "Bag", "layer": "features.block2"}, True),
    ("/api/explain", {"image": "chelsea", "method": "gradient", "region": "0,0,8,8", "box": None}, True),
    ("/api/explain", {"image": "chelsea", "method": "gradient", "box": 0}, False),
    ("/api/explain", {"image": "chelsea", "method": "gradient", "region": [0, 0, 8]}, False),
    ("/api/explain", {"method": "gradient"}, False),
    ("/api/explain", {"image": "chelsea", "method": "gradient", "target": True}, False),
    ("/api/jobs", {"channel": 2, "steps": 8, "round_steps": 2}, True),
    ("/api/jobs", {"channel": 2, "round_steps": 0}, False),
    ("/api/jobs", {"channel": -1}, False),
    ("/api/predict", {"image": "coffee", "top": 1000}, True),
    ("/api/predict", {"image": "coffee", "top": 1001}, False),
    ("/api/compare", {"models": ["fashion_cnn", "fashion_cnn"], "image": "coffee", "method": "gradcam"}, True),
    ("/api/compare", {"models": ["fashion_cnn"], "image": "coffee", "method": "gradcam"}, False),
    ("/api/optimize", {"image": "coffee", "method": "pgd", "options": {"steps": 3, "eps": 0.05}}, True),
    ("/api/optimize", {"image": "coffee", "method": "style"}, False),
    ("/api/optimize", {"image": "coffee", "method": "pgd", "options": {"eps": -1}}, False),
    ("/api/faithfulness", {"key": "0" * 32, "steps": 1}, False),
]


@pytest.mark.parametrize("path, body, taken", AGREED)
def test_the_document_and_the_checks_agree_on_a_body(path, body, taken):
    """The JSON Schema the document gives a body accepts it exactly when the explorer's checks do (the checks
    that need no served model: the typed request and the method's options)."""
    assert body_validator(path).is_valid(body) == taken, list(body_validator(path).iter_errors(body))
    ask = next(route.endpoint.ask for route in ROUTES if route.path == path and "POST" in route.methods)
    try:
        decoded = ask.decode(body)
        if path == "/api/explain":
            options.check_options(interpret.get_method(decoded.method, "attribution"), decoded.options)
        if path == "/api/optimize":
            optimize_jobs.page_options(optimize_jobs.optimization(decoded.method), decoded.options)
    except CnnvizError:
        assert not taken
    else:
        assert taken


def test_an_error_repeats_a_refused_value_briefly(client):
    answer = client.post("/api/explain", json={"image": "chelsea", "method": "gradient", "box": "x" * 100_000})
    assert_one_line(answer, 400, "box is a detection number from 1")
    assert len(answer.json()["error"]) < 200
