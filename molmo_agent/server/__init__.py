"""The gRPC server (the only part of molmo-agent that imports grpc's server APIs).

``config`` holds the validated settings, ``batcher`` gathers concurrent requests into model batches,
``servicer`` implements the ``MolmoAgent`` RPCs as thin async methods, ``auth`` checks bearer tokens, and
``app`` creates, binds, starts and stops the server.
"""
