"""Evaluation metrics: COCO AP, SA-Co/Gold cgF1, SA-Co/VEval and J&F."""
