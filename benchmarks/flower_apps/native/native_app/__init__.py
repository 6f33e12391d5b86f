"""Flower's own FedAvg round (legacy strategy API), plain or with SecAggPlusWorkflow."""
