"""Save and load: same results from memory-mapped files, a manifest that describes them, refusal of
torn or modified files naming the file, and saves that never leave a half-written folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metaembed.index import MultiVectorIndex, persist
from metaembed.index.synthetic import row_ids, unit_vectors

N, R_C, D = 200, 6, 16
META = {"model_version": "3", "model_sha256": "ab" * 32, "data_hash": "d41d8c"}


@pytest.fixture
def index() -> MultiVectorIndex:
    mask = torch.ones(N, R_C, dtype=torch.bool)
    mask[::3, 4:] = False
    return MultiVectorIndex.build(unit_vectors(N, R_C, D, seed=0), mask, row_ids(N), dtype="int8",
                                  first_stage="hnsw", meta=META, hnsw_m=8, ef_search=40)


@pytest.fixture
def queries() -> torch.Tensor:
    return unit_vectors(4, 3, D, seed=1)


def search_both(index: MultiVectorIndex, queries: torch.Tensor) -> list:
    return [index.search(queries, None, budget, k=7, first_stage_k=fsk)
            for budget in ((1, 1), (3, 6)) for fsk in (None, 30)]


def assert_same_results(left: list, right: list) -> None:
    for (scores_a, ids_a), (scores_b, ids_b) in zip(left, right):
        assert ids_a == ids_b
        assert torch.equal(scores_a, scores_b)


def test_a_memory_mapped_load_gives_identical_results(index, queries, tmp_path) -> None:
    index.remove(["doc-3"])
    before = search_both(index, queries)
    folder = index.save(tmp_path / "idx")
    loaded = MultiVectorIndex.load(folder, mmap=True)
    segment = loaded._store.segments[0]
    assert isinstance(segment.codes, np.memmap) and isinstance(segment.scales, np.memmap)
    assert_same_results(search_both(loaded, queries), before)
    assert len(loaded) == N - 1 and "doc-3" not in loaded and loaded.meta == META
    assert loaded.first_stage == index.first_stage and loaded.first_stage.ef_search == 40
    assert_same_results(search_both(MultiVectorIndex.load(folder, mmap=False), queries), before)


def test_a_memory_mapped_first_stage_grows_after_a_copy_and_leaves_the_saved_folder_as_it_was(
    index, queries, tmp_path
) -> None:
    # faiss aborts the process when a mapped index grows: `add` must copy it first.
    folder = index.save(tmp_path / "idx")
    saved = (folder / persist.FIRST_STAGE).read_bytes()
    loaded = MultiVectorIndex.load(folder, mmap=True)
    assert loaded._ann_mapped
    added = torch.cat([queries, queries], dim=1)
    loaded.add(added, None, [f"new-{b}" for b in range(len(queries))])
    _, ids = loaded.search(queries, None, (3, 6), k=1, first_stage_k=30)
    assert [found[0] for found in ids] == [f"new-{b}" for b in range(len(queries))]
    assert (folder / persist.FIRST_STAGE).read_bytes() == saved
    assert len(MultiVectorIndex.load(folder)) == N


def test_a_live_id_twice_in_the_folder_is_refused_naming_the_file(index, tmp_path) -> None:
    folder = index.save(tmp_path / "idx")
    ids = json.loads((folder / persist.IDS).read_text())
    ids[1] = ids[0]
    (folder / persist.IDS).write_text(json.dumps(ids))
    with pytest.raises(persist.IndexFolderError, match=r"ids.json: a live id occurs twice"):
        MultiVectorIndex.load(folder, verify=False)


def test_the_manifest_records_dims_counts_settings_meta_and_every_files_sha256(index, tmp_path) -> None:
    index.remove(["doc-0", "doc-1"])
    folder = index.save(tmp_path / "idx")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["num_rows"], manifest["num_vectors"], manifest["dim"]) == (N, R_C, D)
    assert manifest["dtype"] == "int8" and manifest["live"] == N - 2 and manifest["meta"] == META
    assert manifest["first_stage"] == {"kind": "hnsw", "hnsw_m": 8, "ef_construction": 80, "ef_search": 40,
                                       "vectors": 1, "pool": "first"}
    assert manifest["built_at"].endswith("+00:00")
    on_disk = {path.name for path in folder.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk == {"codes.npy", "scales.npy", "mask.npy", "tombstones.npy",
                                                 "ids.json", "first_stage.faiss"}
    for name, record in manifest["files"].items():
        assert record == persist.file_record(folder / name)


def test_a_torn_array_file_is_refused_naming_it_even_without_verifying(index, tmp_path) -> None:
    folder = index.save(tmp_path / "idx")
    codes = folder / "codes.npy"
    codes.write_bytes(codes.read_bytes()[:-100])
    with pytest.raises(persist.IndexFolderError, match=r"codes\.npy: \d+ bytes but manifest\.json says .*rebuild"):
        MultiVectorIndex.load(folder, verify=False)


def test_a_modified_byte_is_caught_by_sha256_which_a_large_index_may_skip(index, tmp_path) -> None:
    folder = index.save(tmp_path / "idx")
    mask = folder / "mask.npy"
    data = bytearray(mask.read_bytes())
    data[-1] ^= 1
    mask.write_bytes(bytes(data))
    for verify in (True, None):  # None verifies a folder this small
        with pytest.raises(persist.IndexFolderError, match=r"mask\.npy: sha256 differs"):
            MultiVectorIndex.load(folder, verify=verify)
    # Without hashing, opening reads headers only, so the changed byte goes unseen.
    assert len(MultiVectorIndex.load(folder, verify=False)) == N


def test_missing_files_and_inconsistent_dims_are_refused_naming_the_file(index, tmp_path) -> None:
    folder = index.save(tmp_path / "idx")
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "dim": D + 1}))
    with pytest.raises(persist.IndexFolderError, match=r"codes\.npy: holds int8 \(200, 6, 16\) but manifest"):
        MultiVectorIndex.load(folder)
    manifest_path.write_text(json.dumps({**manifest, "live": 5}))
    with pytest.raises(persist.IndexFolderError, match=r"tombstones\.npy: 200 live rows but the manifest says 5"):
        MultiVectorIndex.load(folder)
    manifest_path.write_text(json.dumps(manifest))
    (folder / "first_stage.faiss").unlink()
    with pytest.raises(persist.IndexFolderError, match=r"first_stage\.faiss: missing"):
        MultiVectorIndex.load(folder)
    manifest_path.unlink()
    with pytest.raises(persist.IndexFolderError, match=r"manifest\.json: missing"):
        MultiVectorIndex.load(folder)
    with pytest.raises(FileNotFoundError, match="no such index folder"):
        MultiVectorIndex.load(tmp_path / "nowhere")


def test_a_save_that_dies_midway_leaves_the_old_folder_loadable_and_no_partial_one(
    index, queries, tmp_path, monkeypatch
) -> None:
    folder = index.save(tmp_path / "idx")
    before = search_both(index, queries)
    index.remove(["doc-5"])

    def die(*args, **kwargs):
        raise OSError("killed mid-write")

    monkeypatch.setattr(persist, "write_text", die)  # after the arrays, before ids and manifest
    with pytest.raises(OSError, match="killed mid-write"):
        index.save(folder)
    assert [path.name for path in tmp_path.iterdir()] == ["idx"]
    loaded = MultiVectorIndex.load(folder)
    assert len(loaded) == N and "doc-5" in loaded
    assert_same_results(search_both(loaded, queries), before)
    with pytest.raises(OSError):
        index.save(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_saving_over_an_index_replaces_it_whole(index, queries, tmp_path) -> None:
    folder = index.save(tmp_path / "idx")
    loaded = MultiVectorIndex.load(folder)  # memory-mapped from the folder about to be replaced
    loaded.remove(["doc-7"])
    loaded.add(unit_vectors(2, R_C, D, seed=9), None, ["new-a", "new-b"])
    loaded.save(folder)
    again = MultiVectorIndex.load(folder)
    assert len(again) == N + 1 and "doc-7" not in again and "new-b" in again
    assert sorted(path.name for path in tmp_path.iterdir()) == ["idx"]
    assert_same_results(search_both(again, queries), search_both(loaded, queries))


def test_sidecars_are_saved_with_the_index_and_checked_on_load(index, tmp_path):
    folder = index.save(tmp_path / "index", sidecars={"corpus.json": '{"display": {}}'})

    manifest = json.loads((folder / persist.MANIFEST).read_text())
    assert manifest["files"]["corpus.json"]["bytes"] == len('{"display": {}}')
    (folder / "corpus.json").write_text('{"display": {"x": 1}}')  # edited after the save
    with pytest.raises(persist.IndexFolderError, match="corpus.json: .* bytes but manifest.json says"):
        MultiVectorIndex.load(folder)


@pytest.mark.parametrize("name", ["codes.npy", "manifest.json", "sub/corpus.json", ".hidden"])
def test_a_sidecar_may_not_replace_an_index_file_or_leave_the_folder(index, tmp_path, name):
    with pytest.raises(ValueError, match="plain file name"):
        index.save(tmp_path / "index", sidecars={name: "x"})
    assert not (tmp_path / "index").exists()
