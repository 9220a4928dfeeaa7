"""The generator: determinism, the scene world's twins, and the content of what it writes."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from metaembed.synth.generate import generate
from metaembed.synth.scene_tasks import TASKS, Level
from metaembed.synth.scenes import Obj, Scene, World, pick_heldout


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_generations_are_byte_identical(tmp_path, raw_dir, make_params):
    again = tmp_path / "raw"
    generate(make_params(), again, progress=False)
    first, second = _tree(raw_dir), _tree(again)
    assert first.keys() == second.keys() and len(first) > 100
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_data(tmp_path, raw_dir, make_params):
    other = tmp_path / "raw"
    generate(make_params(seed=1), other, progress=False)
    name = "mmeb-train/SceneT2I_full/original-00000-of-00001.parquet"
    assert (other / name).read_bytes() != (raw_dir / name).read_bytes()


def _attribute_changes(a: Scene, b: Scene) -> list[str]:
    """The attributes in which two scenes differ, object by object (a move counts once)."""
    only_a = [o for o in a.objects if not b.contains(o)]
    only_b = [o for o in b.objects if not a.contains(o)]
    if len(only_a) != 1 or len(only_b) != 1 or a.background != b.background:
        return ["more than one object"]
    old, new = only_a[0], only_b[0]
    names = [f.name for f in fields(Obj) if f.compare]
    return [("position" if name == "cell" else name) for name in names if getattr(old, name) != getattr(new, name)]


@pytest.mark.parametrize("task_name", ["SceneT2I", "NovelComboT2I", "SceneIT2I"])
def test_scene_twins_differ_from_the_positive_in_exactly_one_attribute(task_name, make_params):
    params = make_params()
    world = World(params.scenes, pick_heldout(params.scenes, 0), "ood" if "Novel" in task_name else "train")
    task = TASKS[task_name](world)
    seen = set()
    for row in range(40):
        case = task.case(np.random.default_rng(row), Level(None, None, True), 9)
        assert case.accepts(case.positive.key)
        assert len(case.twins) >= 4
        for twin in case.twins:
            assert not case.accepts(twin.key)
            changes = _attribute_changes(case.positive.key, twin.key)
            assert len(changes) == 1, changes
            seen.add(changes[0])
    assert {"colour", "shape", "size", "position"} <= seen


@pytest.mark.parametrize("task_name", ["ObjectClass", "SceneVQA", "SceneGrounding", "SceneI2T", "TwoObjectT2I"])
def test_every_task_has_failing_twins_and_an_accepted_positive(task_name, make_params):
    params = make_params()
    task = TASKS[task_name](World(params.scenes, pick_heldout(params.scenes, 0), "train"))
    for row in range(20):
        case = task.case(np.random.default_rng(row), Level(None, None, True), 9)
        assert case.accepts(case.positive.key)
        assert case.twins and all(not case.accepts(t.key) for t in case.twins)
        assert len({t.key for t in case.twins}) == len(case.twins)


def test_heldout_combos_never_appear_in_training_scenes(make_params):
    params = make_params()
    heldout = pick_heldout(params.scenes, 0)
    assert len(heldout) == params.scenes.heldout_combos
    world = World(params.scenes, heldout, "train")
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = world.sample_scene(rng, 7)
        assert all((o.colour, o.shape) not in heldout for o in scene.objects)


def test_eval_rows_have_k_candidates_positive_first_and_twins_listed(raw_dir):
    for subset in ("SceneT2I", "SceneGrounding", "SceneIT2I", "NovelComboT2I"):
        table = pq.read_table(raw_dir / "mmeb-eval" / subset / "test-00000-of-00001.parquet").to_pylist()
        twins = pq.read_table(raw_dir / "mmeb-eval" / subset / "hard_negatives.parquet").column(0).to_pylist()
        assert len(table) == 6 and len(twins) == 6
        for row, indices in zip(table, twins):
            assert len(row["tgt_text"]) == len(row["tgt_img_path"]) == 24
            assert row["tgt_img_path"][0].endswith("_pos.png")
            assert all(path.startswith(f"images/{subset}/") for path in row["tgt_img_path"])
            assert all(row["tgt_img_path"][i] != row["tgt_img_path"][0] for i in range(1, 24))
            assert indices and all(1 <= i < 24 and "_twin" in row["tgt_img_path"][i] for i in indices)


def test_text_candidates_never_repeat_the_positive(raw_dir):
    for subset in ("ObjectClass", "SceneVQA", "SceneI2T", "NovelComboClass"):
        for row in pq.read_table(raw_dir / "mmeb-eval" / subset / "test-00000-of-00001.parquet").to_pylist():
            assert row["tgt_text"][0] not in row["tgt_text"][1:]
            assert row["qry_img_path"] and "<|image_1|>" in row["qry_text"]


def test_training_rows_use_the_mmeb_placeholder_and_hard_negatives(raw_dir):
    rows = pq.read_table(raw_dir / "mmeb-train" / "SceneT2I_full" / "original-00000-of-00001.parquet").to_pylist()
    assert len(rows) == 12
    for row in rows:
        assert row["qry_image_path"] == "" and row["pos_text"].startswith("<|image_1|>")
        assert (raw_dir / "mmeb-train" / row["pos_image_path"]).is_file()
        assert row["neg_image_path"] != row["pos_image_path"] and row["neg_image_path"]
    grounding = pq.read_table(raw_dir / "mmeb-train" / "SceneGrounding_single" / "original-00000-of-00001.parquet")
    assert all(p.startswith("images/SceneGrounding_single/") for p in grounding.column("qry_image_path").to_pylist())


def test_v2_has_queries_with_several_relevant_pages_and_two_languages(raw_dir):
    v2 = raw_dir / "vidore" / "synth_reports_v2"
    qrels = pq.read_table(v2 / "qrels" / "test-00000-of-00001.parquet")
    assert qrels.schema.field("score").type == "double"
    counts = {}
    for qid in qrels.column("query-id").to_pylist():
        counts[qid] = counts.get(qid, 0) + 1
    assert sum(1 for c in counts.values() if c > 1) >= 2
    languages = set(pq.read_table(v2 / "queries" / "test-00000-of-00001.parquet").column("language").to_pylist())
    assert languages == {"en", "fr"}
    v1 = pq.read_table(raw_dir / "vidore" / "synth_reports_test_subsampled_beir" / "qrels" / "test-00000-of-00001.parquet")
    assert v1.schema.field("score").type == "int64"


def test_card_and_summary_report_chance_levels(raw_dir):
    summary = json.loads((raw_dir / "synth.json").read_text())
    card = (raw_dir / "README.md").read_text()
    for name, info in summary["mmeb_eval"].items():
        assert info["chance_p_at_1"] == pytest.approx(1 / 24)
        assert 0 < info["chance_twin_accuracy"] < 0.5
        assert re.search(rf"^\| {name} +\|", card, re.MULTILINE)
    assert "4.17%" in card
    for name in ("synth_reports_test_subsampled_beir", "synth_reports_v2"):
        assert 0 < summary["vidore"][name]["chance_ndcg_at_5"] < 1
    assert summary["params"]["train"]["rows_per_subset"] == 12


def test_vocabulary_covers_every_word_of_the_generated_english_text(raw_dir):
    from metaembed.synth.vocabulary import words

    known = set(words())
    texts = []
    for path in (raw_dir / "mmeb-train").glob("*/original-*.parquet"):
        table = pq.read_table(path)
        texts += table.column("qry").to_pylist() + table.column("pos_text").to_pylist()
    texts += pq.read_table(raw_dir / "vidore" / "colpali_train_set" / "data" / "train-00000-of-00001.parquet",
                           columns=["query"]).column("query").to_pylist()
    found = {w.strip('?:".,').lower() for text in texts for w in text.replace("<|image_1|>", " ").split()}
    missing = {w for w in found if w.isalpha() and w not in known}
    assert missing == set()
    assert len(found) > 50


@pytest.mark.parametrize("task_name", ["SceneT2I", "NovelComboT2I", "TwoObjectT2I"])
def test_queries_without_positions_name_no_position_and_any_scene_showing_the_object_answers(task_name, make_params):
    params = make_params(scenes={"query_positions": False})
    world = World(params.scenes, pick_heldout(params.scenes, 0), "ood" if "Novel" in task_name else "train")
    task = TASKS[task_name](world)
    for row in range(30):
        case = task.case(np.random.default_rng(row), Level(None, None, True), 9)
        assert not any(name in case.query.text for name in world.positions if name != "center")
        assert " at the " not in case.query.text
        positive = case.positive.key
        assert case.accepts(positive) and case.twins
        free = [cell for cell in range(world.cells) if positive.at(cell) is None]
        moved = [positive.swap(obj, replace(obj, cell=cell)) for obj in positive.objects for cell in free[:1]]
        assert all(case.accepts(scene) for scene in moved)  # where an object stands does not matter
        for twin in case.twins:
            assert not case.accepts(twin.key)
            assert "position" not in _attribute_changes(positive, twin.key)


def test_document_queries_are_added_to_training_pages_at_their_rate(tmp_path, make_params):
    def queries(rate):
        out = tmp_path / f"rate{rate}"
        generate(make_params(pages={"train_docs": 6, "eval_docs": 2, "document_query_rate": rate}), out,
                 progress=False)
        table = out / "vidore" / "colpali_train_set" / "data" / "train-00000-of-00001.parquet"
        return pq.read_table(table, columns=["query", "image_filename"]).to_pylist()

    without, every = queries(0.0), queries(1.0)
    assert not any(row["query"].startswith("Find the pages of the") for row in without)
    documents = [row for row in every if row["query"].startswith("Find the pages of the")]
    assert [row for row in every if row not in documents] == without  # the other rows stay as they were
    assert len(documents) == len({row["image_filename"] for row in without}) >= 12  # one per page
