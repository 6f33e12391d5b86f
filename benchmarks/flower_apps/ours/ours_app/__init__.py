"""This library's SecAgg+ over Flower, and a plain one-round-trip baseline with the same poll."""
