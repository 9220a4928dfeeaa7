"""MetaEmbed multimodal multi-vector retrieval: model core, training and MLOps around it."""

__version__ = "0.1.0"
