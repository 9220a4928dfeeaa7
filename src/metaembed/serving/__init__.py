"""The user-facing side of the multi-vector index (docs/index.md, "Commands and service" and
"The index stage").

    corpus     a folder of candidates (ViDoRe, MMEB-eval, or plain images and .txt files), detected
    build      encode a corpus with a model and save the index, its sidecar and the registry link
    sidecar    corpus.json: what each candidate shows in a result
    searcher   open an index with the model named in its manifest; encode a query and search
    app        the HTTP service (`create_app`) over a searcher
    budget     "RQxRC" budgets as typed on a command line or sent to the service
    stage      the DVC `index` stage: the evaluation corpus's index and its search time per budget
    latency    the timing of one budget, exhaustive and two-stage, and recall@k
    params     params.yaml `index:`

Most modules import torch, faiss or mlflow at the top: the command modules import them inside
`run`. `params` and `sidecar` import nothing heavy (every command loads `params` with the params
root), and this file imports nothing.
"""
