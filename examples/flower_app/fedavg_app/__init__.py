"""FedAvg over Flower with this library's secure aggregation."""
