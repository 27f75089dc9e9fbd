"""A local NemoVideo backend for tests, the offline demo and benchmarks.

It speaks the whole contract (every documented envelope, status shape and
stream style, each answer with and without its optional parts), runs a scripted
agent, and injects faults on request. Serve it with
`nemo_mcp.sandbox.testing.SandboxServer` or `python -m nemo_mcp.sandbox`;
`nemo_mcp.sandbox.app.create_app` is the ASGI app. Importing the package loads
nothing else, so the command line can read the sandbox's options cheaply.

`SANDBOX.md` beside this file is the rule table: each rule of the contract, where
the sandbox enforces it (and the switch for each form it allows), and the tests
that meet it, on the wire and through the product.
"""
