"""atoll's one C extension; everything else about the package is in pyproject.toml.

``atoll.runtime._native`` (src/atoll/runtime/native/: ``native.c``, ``wasi.c``, ``log.c``,
``watch.c``, ``bodyread.c`` and their shared ``module.h``) holds the hot paths into wasmtime's C API. It links
against nothing (atoll.runtime.capi hands it the addresses of wasmtime-py's own
C functions), so it needs only a C compiler and Python's headers at install
time; scripts/setup.sh installs both on Debian.
"""

from setuptools import Extension, setup

#: scripts/setup.sh rebuilds when any file of src/atoll/runtime/native/ changes.
NATIVE_SOURCES = [
    "src/atoll/runtime/native/native.c",
    "src/atoll/runtime/native/wasi.c",
    "src/atoll/runtime/native/log.c",
    "src/atoll/runtime/native/watch.c",
    "src/atoll/runtime/native/bodyread.c",
]

setup(
    ext_modules=[
        Extension(
            "atoll.runtime._native",
            sources=NATIVE_SOURCES,
            depends=["src/atoll/runtime/native/module.h"],
            extra_compile_args=[
                "-O2",
                "-std=gnu11",
                "-Wall",
                "-Wno-missing-field-initializers",
                "-fvisibility=hidden",  # the files share symbols; the module exports only PyInit
            ],
        )
    ]
)
