"""A local NemoVideo backend for tests, the offline demo and benchmarks.

It speaks the whole contract (every documented envelope, status shape and
stream style), runs a scripted agent, and injects faults on request. Serve
it with `nemo_mcp.sandbox.testing.SandboxServer` or `python -m nemo_mcp.sandbox`.
"""

from nemo_mcp.sandbox.app import create_app
from nemo_mcp.sandbox.config import Fault, SandboxConfig

__all__ = ["Fault", "SandboxConfig", "create_app"]
