"""Sign-in throttling: failed logins counted per (user, client address) pair.

Five failures of one pair within a minute lock that pair out for a minute: every attempt of the
pair meanwhile is answered 429 with ``Retry-After``, whatever the password (so guessing on
stops telling anything). After a lock-out, one more failure locks the pair again, each lock-out
twice as long as the one before (1, 2, 4, 8 minutes, then 15 at most). A successful sign-in of
the pair (once it is not locked) forgets it, and so do 15 minutes without a failure after its
last lock-out. The user counted is the one the request names, whether it exists or not: an
unknown user is throttled exactly like a real one.

Other addresses are not affected: the real user signs in from their own address while an
attacker is locked out elsewhere. The state is bounded: at most :attr:`LoginThrottle.max_addresses`
addresses (the least recently seen forgotten first) with at most
:attr:`LoginThrottle.users_per_address` users each; the further users one address tries share one
more pair (so a flood of made-up names from one address is throttled together, and cannot push
a locked pair out of the table). An attacker with more addresses than the table holds is beyond
a per-address limit: a proxy's rate limit is the place for that. Names are kept as 16-byte
digests, so a long made-up name takes no more room than a short one.

Pure and single-threaded (the console's event loop): time comes from ``clock``, so the tests
never sleep.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

#: The key of the pair shared by the users of one address beyond ``users_per_address``.
OTHERS = None


@dataclass(slots=True)
class _Pair:
    failures: deque[float]
    strikes: int = 0  # lock-outs so far
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Counts failed sign-ins per (user, address); see the module.

    Parameters:
        limit: failures within ``window`` seconds that lock a pair out.
        first_penalty: the first lock-out, seconds; each further one doubles, up to
            ``max_penalty``, which is also how long a pair is remembered after its last one.
        max_addresses, users_per_address: the bounds of the table.
        clock: monotonic seconds (``time.monotonic``).
    """

    def __init__(self, *, limit: int = 5, window: float = 60.0, first_penalty: float = 60.0,
                 max_penalty: float = 900.0, max_addresses: int = 2048,
                 users_per_address: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.first_penalty = first_penalty
        self.max_penalty = max_penalty
        self.max_addresses = max_addresses
        self.users_per_address = users_per_address
        self.clock = clock
        self._table: OrderedDict[str, dict[bytes | None, _Pair]] = OrderedDict()

    def __len__(self) -> int:
        """Pairs remembered (the bound: ``max_addresses * (users_per_address + 1)``)."""
        return sum(len(pairs) for pairs in self._table.values())

    def retry_after(self, user: str, address: str) -> int:
        """Seconds (rounded up) before the pair may try again; 0: it may try now."""
        pairs = self._table.get(address)
        if pairs is None:
            return 0
        pair = pairs.get(_digest(user)) or (pairs.get(OTHERS) if self._full(pairs) else None)
        now = self.clock()
        if pair is None or now >= pair.locked_until:
            return 0
        return max(1, math.ceil(pair.locked_until - now))

    def failed(self, user: str, address: str) -> float:
        """Count a failed sign-in; returns the lock-out it started (seconds), or 0."""
        now = self.clock()
        pair = self._pair(user, address, now)
        if now < pair.locked_until:
            return 0.0  # already locked out (the caller answers 429 without checking)
        pair.last = now
        if pair.strikes:  # failed again after a lock-out
            return self._lock(pair, now)
        while pair.failures and pair.failures[0] <= now - self.window:
            pair.failures.popleft()
        pair.failures.append(now)
        return self._lock(pair, now) if len(pair.failures) >= self.limit else 0.0

    def succeeded(self, user: str, address: str) -> None:
        """Forget the pair (call only once :meth:`retry_after` said it may try)."""
        pairs = self._table.get(address)
        if pairs is not None:
            pairs.pop(_digest(user), None)
            if not pairs:
                del self._table[address]

    def _lock(self, pair: _Pair, now: float) -> float:
        penalty = min(self.first_penalty * 2 ** pair.strikes, self.max_penalty)
        pair.strikes += 1
        pair.locked_until = now + penalty
        pair.failures.clear()
        return penalty

    def _expired(self, pair: _Pair, now: float) -> bool:
        if pair.strikes:
            return now >= pair.locked_until + self.max_penalty
        return now - pair.last >= self.window

    def _full(self, pairs: dict[bytes | None, _Pair]) -> bool:
        return len(pairs) - (OTHERS in pairs) >= self.users_per_address

    def _pair(self, user: str, address: str, now: float) -> _Pair:
        pairs = self._table.get(address)
        if pairs is None:
            if len(self._table) >= self.max_addresses:
                self._table.popitem(last=False)
            pairs = self._table[address] = {}
        self._table.move_to_end(address)
        for key in [k for k, p in pairs.items() if self._expired(p, now)]:
            del pairs[key]
        name = _digest(user)
        key = name if name in pairs or not self._full(pairs) else OTHERS
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = _Pair(deque(maxlen=self.limit), last=now)
        return pair


def _digest(user: str) -> bytes:
    return hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=16).digest()
