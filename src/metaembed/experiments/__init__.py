"""Experiment runners built on the stage libraries (`metaembed baselines`: several trainings and
evaluations side by side). Nothing in a DVC stage imports them, so changing them reruns no stage."""
