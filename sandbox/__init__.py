"""Provider sandbox: a real HTTP server speaking Close, SignalWire, IdentityCall and CM.com.

Used by the service's tests and ``numbers demo`` / ``numbers sandbox`` so nothing needs the
internet. See ``sandbox.app`` for the control API under ``/_sandbox``.
"""

from sandbox.app import create_sandbox_app
from sandbox.server import SandboxServer, serve
from sandbox.state import SandboxCredentials, SandboxState

__all__ = ["SandboxCredentials", "SandboxServer", "SandboxState", "create_sandbox_app", "serve"]
