"""Multi-party protocols as sans-I/O state machines, the reference FedAvg
driver and the ``secagg`` command line."""
