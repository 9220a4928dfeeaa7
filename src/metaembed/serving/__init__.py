"""The user-facing side of the multi-vector index (docs/index.md, "Commands and service").

    corpus     a folder of candidates (ViDoRe, MMEB-eval, or plain images and .txt files), detected
    build      encode a corpus with a model and save the index, its sidecar and the registry link
    searcher   open an index with the model named in its manifest; encode a query and search
    app        the HTTP service (`create_app`) over a searcher
    budget     "RQxRC" budgets as typed on a command line or sent to the service

Modules import torch, faiss or mlflow at the top: the command modules import them inside `run`.
"""
