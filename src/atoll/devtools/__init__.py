"""Developer tools, not the runtime: `[build]` commands, toolchain checks, hot reload."""
