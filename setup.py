"""atoll's one C extension; everything else about the package is in pyproject.toml.

``atoll.runtime._native`` (src/atoll/runtime/_native.c) holds the hot paths into
wasmtime's C API. It links against nothing (atoll.runtime.capi hands it the
addresses of wasmtime-py's own C functions), so it needs only a C compiler and
Python's headers at install time; scripts/setup.sh installs both on Debian.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "atoll.runtime._native",
            sources=["src/atoll/runtime/_native.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wno-missing-field-initializers"],
        )
    ]
)
