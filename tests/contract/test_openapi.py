"""specs/openapi.yaml is the app's schema, word for word."""

from __future__ import annotations

import yaml

from voice_orchestrator.openapi import dump, schema

from ..conftest import REPO


def test_committed_schema_equals_the_app() -> None:
    committed = yaml.safe_load((REPO / "specs" / "openapi.yaml").read_text())
    assert committed == schema(), "run `make openapi` and commit specs/openapi.yaml"


def test_schema_documents_the_contract() -> None:
    document = schema()
    operation = document["paths"]["/api/orchestrator/dialogue"]["post"]
    assert set(operation["requestBody"]["content"]) >= {
        "multipart/form-data",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
    }
    assert set(operation["responses"]) >= {"200", "400", "413", "415", "422", "429", "502", "503"}
    assert {p["name"] for p in operation["parameters"]} >= {"stream", "session_id"}
    assert yaml.safe_load(dump(document)) == document
