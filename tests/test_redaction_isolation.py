"""The secrets registry starts empty in every test (conftest): what one test registered
never masks text in the next, so each redaction test stands on its own run."""

from __future__ import annotations

from nemo_mcp import redaction

SECRET = "plain-looking-secret-4711"


def test_a_registered_secret_is_masked() -> None:
    redaction.register(SECRET)
    assert redaction.redact(f"the key {SECRET} leaked") == f"the key {redaction.MASK} leaked"


def test_the_next_test_starts_without_it() -> None:
    # Runs after the test above (file order): the secret it registered is gone.
    assert redaction.redact(f"the key {SECRET}") == f"the key {SECRET}"


def test_token_shapes_are_masked_without_registering() -> None:
    assert redaction.redact("Bearer nmv_usr_abcdef123456") == redaction.MASK
