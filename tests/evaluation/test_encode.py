from __future__ import annotations

import pytest
import torch

from metaembed.data.records import ImageRef, Side
from metaembed.evaluation.encode import (EmbeddingStore, Requests, encode_requests, encode_side, item_key,
                                         load_stores, save_stores)


def test_keys_tell_inputs_apart_by_text_and_image_and_repeat_for_the_same_input(tmp_path):
    a = ImageRef(path=tmp_path / "a.png")
    assert item_key("red", a) == item_key("red", ImageRef(path=tmp_path / "a.png"))
    assert len({item_key("red", a), item_key("red", None), item_key("blue", a),
                item_key("red", ImageRef(data=b"png"))}) == 4
    requests = Requests()
    keys = [requests.add("candidate", Side("red", a)) for _ in range(3)] + [requests.add("query", Side("red", a))]
    assert len(set(keys)) == 1 and requests.count("candidate") == 1 and requests.count("query") == 1


def test_encoding_in_sorted_batches_matches_encoding_one_by_one(saved_model, images, tmp_path):
    from metaembed.model import MetaEmbed

    model = MetaEmbed.from_pretrained(saved_model)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    items = [Side("a long caption about a small red circle"), Side("", ImageRef(path=paths[0])),
             Side("dog", ImageRef(path=paths[1])), Side("x"), Side("", ImageRef(path=paths[2]))]
    store = encode_side(model, "candidate", {str(i): item for i, item in enumerate(items)}, batch_size=2,
                        progress=False)
    assert store.vectors.shape == (5, 8, model.dim) and store.lengths.tolist() == [8] * 5
    with torch.inference_mode():
        for i, item in enumerate(items):
            alone, _ = model.encode("candidate", [item.text], [str(item.image.path) if item.image else None])
            torch.testing.assert_close(store.vectors[i], alone[0], atol=2e-5, rtol=1e-4)


def test_token_level_rows_keep_only_real_vectors_in_front(make_model):
    model = make_model(pooling="tokens").eval()
    items = {"short": Side("cat"), "long": Side("a much longer text with many more tokens in it")}
    store = encode_side(model, "query", items, progress=False)
    short, long = store.lengths.tolist()
    assert short < long == store.vectors.shape[1]
    assert torch.all(store.vectors[0, short:] == 0) and torch.all(store.vectors[0, :short].norm(dim=-1) > 0.99)
    vectors, mask = store.take(torch.tensor([0, 1]))
    assert mask.tolist()[0] == [True] * short + [False] * (long - short)
    vectors, mask = store.take(torch.tensor([0]))
    assert vectors.shape[1] == short and mask is None  # trimmed to the longest row taken


def test_stores_round_trip_through_safetensors(tmp_path):
    store = EmbeddingStore(["a", "b", "c"], torch.randn(3, 4, 5), torch.tensor([4, 2, 3]))
    save_stores(tmp_path / "cache", {"query": store, "candidate": store.select(["c", "a"])}, {"encoder": "x"})
    stores, meta = load_stores(tmp_path / "cache")
    assert meta == {"format": 1, "encoder": "x"}
    torch.testing.assert_close(stores["query"].vectors, store.vectors)
    assert stores["candidate"].keys == ["c", "a"] and stores["candidate"].lengths.tolist() == [3, 4]
    vectors, mask = stores["query"].take(stores["query"].rows(["b", "a"]), limit=3)
    assert vectors.shape == (2, 3, 5) and mask.tolist() == [[True, True, False], [True, True, True]]
    with pytest.raises(KeyError, match="never encoded"):
        stores["query"].rows(["zzz"])


def test_an_interrupted_save_leaves_no_cache_that_looks_complete(tmp_path, monkeypatch):
    import metaembed.evaluation.encode as encode

    store = EmbeddingStore(["a"], torch.randn(1, 2, 3), torch.tensor([2]))
    save_stores(tmp_path, {"query": store}, {})
    monkeypatch.setattr(encode, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_stores(tmp_path, {"query": store}, {})
    with pytest.raises(FileNotFoundError, match="no embedding cache"):
        load_stores(tmp_path)


def test_a_cache_only_encodes_what_is_new_and_drops_what_is_gone(fake_model):
    model = fake_model("hashed")
    first = Requests()
    for text in ("a", "b", "c"):
        first.add("candidate", Side(text))
    cache = encode_requests(model, first, progress=False)
    assert model.encoded == 3
    second = Requests()
    for text in ("b", "c", "d"):
        second.add("candidate", Side(text))
    stores = encode_requests(model, second, progress=False, cache=cache)
    assert model.encoded == 4  # only "d"
    assert stores["candidate"].keys == list(second.items["candidate"])
    fresh = encode_requests(fake_model("hashed"), second, progress=False)
    torch.testing.assert_close(stores["candidate"].vectors, fresh["candidate"].vectors)
