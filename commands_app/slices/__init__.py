"""Domain slices. Each is a folder with the same files: payloads, aggregate, handlers,
access, sagas, upcasters, and an `__init__` exposing `SLICE`. Plain Python only."""
