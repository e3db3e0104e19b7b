"""Generated protobuf and gRPC code for ``protos/molmo_agent/v1``.

Regenerate with ``python protos/generate.py``. Only the ``*_pb2*`` files are generated; this file is
hand-written so the folder is a regular package.
"""
