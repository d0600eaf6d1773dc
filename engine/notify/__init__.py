"""Notifications to the enterprises: final statuses to the result URL, MO
messages to the MO URL, Kannel ``dlr-url`` callbacks.

An event is written to the store's outbox in the same transaction as what it
reports, so it cannot be lost; :class:`~engine.notify.sender.Notifier` then
delivers committed entries over HTTP and reports each outcome (sent, retry at,
dead) back to be persisted.  See :mod:`engine.notify.sender`.
"""

from engine.notify.sender import Delivery, Entry, Notifier, sign

__all__ = ["Entry", "Delivery", "Notifier", "sign"]
