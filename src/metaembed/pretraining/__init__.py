"""Caption pretraining of the backbone on the training split, before MetaEmbed training."""
