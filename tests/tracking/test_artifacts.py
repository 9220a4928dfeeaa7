"""Which process owns the MLflow run."""


def test_a_process_on_another_node_is_never_rank_zero(monkeypatch):
    from metaembed.tracking.artifacts import is_rank_zero

    for name in ("NODE_RANK", "GROUP_RANK", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_rank_zero()  # a single process
    monkeypatch.setenv("NODE_RANK", "1")  # a hand-launched second node, before Lightning knows its rank
    assert not is_rank_zero()
    monkeypatch.delenv("NODE_RANK")
    monkeypatch.setenv("GROUP_RANK", "2")  # torchrun's name for it
    assert not is_rank_zero()
