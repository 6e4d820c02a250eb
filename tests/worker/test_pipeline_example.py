"""examples/pipeline.py (the demo's flow) computes page counts, bots excluded (no broker)."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from conftest import REPO_ROOT

from flows.testing import TopologyTestDriver


def _pipeline() -> Any:
    path = REPO_ROOT / "examples" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("example_pipeline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_pipeline_counts_human_page_views() -> None:
    module = _pipeline()
    with TopologyTestDriver(module.app) as driver:
        views = driver.input_topic("page-views")
        views.pipe_input("ann", module.PageView("ann", "/docs"))
        views.pipe_input("bob", module.PageView("bob", "/docs"))
        views.pipe_input("bot", module.PageView("bot", "/docs", agent="bot"))
        views.pipe_input("ann", module.PageView("ann", "/"))
        counts = driver.output_topic("page-view-counts").read_key_values_to_map()
    assert counts == {"/docs": 2, "/": 1}
    assert module.app.errors.on_deserialization_error == "dead_letter"
