"""Optuna tunes the nested Matryoshka groups (and temperature, weights, learning rate).

`space` samples only valid group lists, `objective` trains and scores one trial, `study` runs
the study on shared storage (a journal file, or an RDB URL for many workers) with every trial
nested in MLflow, and `report` writes the plots and the best configuration as a params patch.
"""

from metaembed.tuning.params import TuneParams

__all__ = ["TuneParams"]
