"""The fleet's models: SOC drop per vehicle-minute and energy per km per segment, from features to registered champions.

Feature and label building, the time-split evaluation and baselines, distributed XGBoost training, MLflow tracking,
the registry's champion gate and champion scoring.
"""
