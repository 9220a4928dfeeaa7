"""A page's checks, the text taken from the DOM, and the Prefect helpers, without a browser; then one
local page in headless Chromium: script-drawn text counts, a missing text fails the page."""

from __future__ import annotations

import pytest

from metaembed.registry.report import pipeline_markdown
from metaembed.ui_check.browser import Rendered, find_chromium, visible_text
from metaembed.ui_check.pages import PageCheck, PageFailed
from metaembed.ui_check.prefect_pages import cron_words, stage_rows


def test_a_page_lacking_a_text_or_an_element_or_showing_an_error_lists_each_problem():
    page = PageCheck("p", "http://x", shows=["Child runs", "pipeline.stage.train"], markup=[r'class="main-svg"'],
                     hides=["Something went wrong"])
    good = Rendered('<svg class="main-svg"></svg>', "Child  runs\n pipeline.stage.train : ran", blank=False)
    assert page.problems(good) == []
    bad = Rendered("<div></div>", "Child runs Something went wrong", blank=True)
    assert page.problems(bad) == ["does not show 'pipeline.stage.train'",
                                  "has no element matching 'class=\"main-svg\"'",
                                  "shows 'Something went wrong'", "rendered blank"]


def test_styles_scripts_and_entities_are_no_page_text():
    dom = ("<html><head><style>.a{color:red}</style><script>var champion = 1;</script></head>"
           "<body><p>@&nbsp;champion</p><noscript>enable JavaScript</noscript></body></html>")
    text = " ".join(visible_text(dom).split())
    assert text == "@ champion"


def test_the_stage_rows_are_read_from_the_summary_artifact():
    from types import SimpleNamespace

    markdown = ("# metaembed pipeline\n\n| stage | status |\n|---|---|\n| prepare | skipped (unchanged) |\n"
                "| train | ran |\n\n| budget | quality |\n|---|---|\n| 1x1 | 0.5 |\n")
    assert stage_rows(markdown) == [("prepare", "skipped (unchanged)"), ("train", "ran")]
    # The real summary's layout (registry.report) reads the same way.
    stages = {"prepare": "ran", "train": "skipped (unchanged)"}
    registration = SimpleNamespace(created=True, index_tag=None, uri="models:/m/1", model_sha256="0" * 64,
                                   train_run_id="r", tracking_uri="sqlite:///mlflow.db", table=None, index_latency=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("metaembed.registry.report.decision_markdown", lambda decision: "gate")
        patch.setattr("metaembed.registry.report.budget_markdown", lambda table, latency: "budgets")
        assert stage_rows(pipeline_markdown(stages, registration, None)) == list(stages.items())


def test_a_daily_cron_is_worded_as_the_prefect_ui_words_it():
    assert cron_words("0 3 * * *") == "At 03:00 AM every day"
    assert cron_words("30 15 * * *") == "At 03:30 PM every day"
    assert cron_words("0 0 * * *") == "At 12:00 AM every day"
    assert cron_words("0 3 * * 1") is None


@pytest.mark.slow
def test_a_local_page_in_chromium_counts_script_drawn_text_and_fails_on_missing_text(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no headless Chromium here (the three-UI test fails in CI without one)")
    page = tmp_path / "page.html"
    page.write_text("<html><body style='background:linear-gradient(red,blue)'><h1>loading</h1><script>"
                    "setTimeout(() => { document.body.innerHTML += '<p>Pareto Front</p><svg class=\"main-svg\">"
                    "</svg>'; }, 3000);</script></body></html>")
    shown = PageCheck("drawn", page.as_uri(), shows=["loading", "Pareto Front"], markup=[r'class="main-svg"'])
    assert shown.run(chromium, tmp_path / "shots", tmp_path / "text").is_file()
    missing = PageCheck("missing", page.as_uri(), shows=["Hyperparameter Importance"])
    with pytest.raises(PageFailed, match="missing .*does not show 'Hyperparameter Importance'"):
        missing.run(chromium, tmp_path / "shots", tmp_path / "text")
    assert "Pareto Front" in (tmp_path / "text" / "missing.txt").read_text()
