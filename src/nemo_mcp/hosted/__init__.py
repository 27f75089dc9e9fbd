"""Hosted mode: many users on many replicas behind a load balancer.

- `redis_client_state`: each user's client id, NemoVideo token and session in Redis (the
  file store's twin), and the Redis connection every replica shares;
  `nemo_mcp.ledger.redis` keeps the work ledger beside them.
- `oauth`: who the user is, from a JWT access token checked against the issuer's keys.
- `local`: a Redis and an HAProxy run as child processes on loopback, with the
  configuration in `deploy/`, for tests, benchmarks and trying it on one machine.
"""
