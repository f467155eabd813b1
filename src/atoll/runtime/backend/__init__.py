"""The one seam between atoll and wasmtime: a :class:`~.base.Backend`, chosen once.

``auto.BACKEND`` is the compiled path (``native.py``: atoll's C extension
over wasmtime's C API) when it imports, else wasmtime-py's public API
(``public.py``). Everything else in ``runtime/`` calls the backend and never
asks which one it is.
"""
