"""What ``molmo-agent bench`` times: ``point`` (model.point's latency breakdown), ``serve`` (the gRPC
server against in-process calls), ``agent`` (the agent loop's step) and ``gpu`` (a full-size Molmo2 on a
GPU). Apart from the library's modules because none of them is needed to use a model, only to measure one;
the one-off measurement scripts live in ``benchmarks/``."""
