"""Where one user's client id, NemoVideo token and session are kept: the `ClientState`
protocol `NemoClient` uses.

Two stores keep them: files under `NEMO_HOME` (`FileState`, over `state_files.StateStore`,
the default), and Redis when hosted (`hosted.redis_client_state.RedisState`), shared by every
replica. Both move a damaged record aside and say so once (`take_notices`), and both
give a cheap `stamp` that changes whenever another process or replica writes a record,
so a cached token or session is re-read exactly when it changed.

NemoVideo gives one anonymous token per client id (every 7 days). A hosted replica that
dies between asking for a user's first token and keeping it would leave that user with
none, and no way to get one; so the Redis store records each token request before it
leaves, and the next replica to find one unanswered asks with a new client id (the
user's client id is theirs alone there). The local client id is the computer's, shared
with the NemoVideo skill: the file store never replaces it, and records nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, Protocol

from nemo_mcp.state_files import AuthRecord, Damaged, SessionRecord, StateStore

Record = Literal["auth", "session"]

#: The home's named leases the running task holds, by name: the owner each was taken as.
#: A shared store fences its writes with them (`RedisState`): a write made under a lease
#: another process has taken since is refused.
_holding: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("nemo_leases_held", default=())


@contextmanager
def holding(name: str, owner: str) -> Iterator[None]:
    """Mark the block as holding the home's lease `name` as `owner`."""
    token = _holding.set((*_holding.get(), (name, owner)))
    try:
        yield
    finally:
        _holding.reset(token)


def held(name: str) -> str | None:
    """The owner the running task holds the lease `name` as, if it holds it."""
    return next((owner for lease, owner in reversed(_holding.get()) if lease == name), None)


class ClientState(Protocol):
    """One user's persisted client id, token and session."""

    #: The last damaged token record set aside (for messages about the missing token).
    damaged_auth: Damaged | None
    #: The last damaged session record set aside (what it held, if readable).
    damaged_session: Damaged | None

    @property
    def where(self) -> str:
        """Where the state is, in words, for messages ("the state folder /x")."""
        ...

    async def client_id(self, configured: str | None = None, *, token_exists: bool = False) -> str:
        """The configured client id, else the kept one, else a new one kept once."""
        ...

    async def has_auth(self) -> bool: ...

    async def load_auth(self) -> AuthRecord | None: ...

    async def save_auth(self, record: AuthRecord) -> None: ...

    async def clear_auth(self) -> None: ...

    async def load_session(self) -> SessionRecord | None: ...

    async def save_session(self, record: SessionRecord) -> None: ...

    async def clear_session(self) -> None: ...

    async def stamp(self, record: Record) -> Hashable:
        """A fingerprint of the record: another writer's change changes it."""
        ...

    def note(self, sentence: str) -> None:
        """A sentence for the user, given out once with the next result."""
        ...

    def take_notices(self) -> list[str]: ...

    async def token_asked(self) -> str | None:
        """The client id of a token request that may have reached NemoVideo while its
        answer was never kept (the process asking died), if one is recorded."""
        ...

    async def note_token_asked(self, client_id: str | None) -> None:
        """Record, before it leaves, a token request with `client_id`; None: answered."""
        ...

    async def replace_client_id(self) -> str | None:
        """A new client id in place of the kept one, where this store may make one; None
        where it may not."""
        ...


class FileState:
    """`ClientState` on the files of a `StateStore` (small local reads and writes)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    @property
    def damaged_auth(self) -> Damaged | None:
        return self.store.damaged_auth

    @damaged_auth.setter
    def damaged_auth(self, value: Damaged | None) -> None:
        self.store.damaged_auth = value

    @property
    def damaged_session(self) -> Damaged | None:
        return self.store.damaged_session

    @damaged_session.setter
    def damaged_session(self, value: Damaged | None) -> None:
        self.store.damaged_session = value

    @property
    def where(self) -> str:
        return f"the state folder {self.store.folder}"

    async def client_id(self, configured: str | None = None, *, token_exists: bool = False) -> str:
        return self.store.client_id(configured, token_exists=token_exists)

    async def has_auth(self) -> bool:
        return self.store.has_auth_file()

    async def load_auth(self) -> AuthRecord | None:
        return self.store.load_auth()

    async def save_auth(self, record: AuthRecord) -> None:
        self.store.save_auth(record)

    async def clear_auth(self) -> None:
        self.store.clear_auth()

    async def load_session(self) -> SessionRecord | None:
        return self.store.load_session()

    async def save_session(self, record: SessionRecord) -> None:
        self.store.save_session(record)

    async def clear_session(self) -> None:
        self.store.clear_session()

    async def stamp(self, record: Record) -> Hashable:
        return self.store.stamp(f"{record}.json")

    def note(self, sentence: str) -> None:
        self.store.note(sentence)

    def take_notices(self) -> list[str]:
        return self.store.take_notices()

    async def token_asked(self) -> str | None:
        return None

    async def note_token_asked(self, client_id: str | None) -> None:
        return None

    async def replace_client_id(self) -> str | None:
        return None


__all__ = ["ClientState", "FileState", "Record"]
