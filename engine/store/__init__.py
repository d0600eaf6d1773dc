"""The durable store: a small interface (base.py) and its embedded SQLite implementation."""

from engine.store.base import IdGenerator, NewMessage, PartRecord, Store, StoredMessage, Update
from engine.store.sqlite import SqliteStore

__all__ = ["IdGenerator", "NewMessage", "PartRecord", "Store", "StoredMessage", "Update", "SqliteStore"]
