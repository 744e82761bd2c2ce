"""A small userspace TCP proxy on a worker's path to the gateway, for the faults this kernel
cannot make (no netem): it forwards every byte both ways, and on demand slows each chunk
(``slow``), holds every byte until told otherwise (``stall``), or resets every connection
(``reset``).

It reads its mode from a JSON file (``{"mode": "slow", "delay_ms": 2000}``) whenever the file
changes, so the controller steers it without a socket of its own. TLS passes through untouched:
the worker still verifies the gateway's certificate for ``mapi.alipay.com``.

    python -m rehearsal.proxy --listen 127.0.0.2:443 --target 10.77.3.11:443 --control FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

CHUNK = 65536
POLL_SECONDS = 0.2
MODES = ("pass", "slow", "stall", "reset")


@dataclass
class Mode:
    name: str = "pass"
    delay_ms: float = 0.0

    @classmethod
    def read(cls, path: Path) -> Mode:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        name = str(data.get("mode", "pass"))
        return cls(name if name in MODES else "pass", float(data.get("delay_ms", 0)))


def write_mode(path: Path, name: str, delay_ms: float = 0.0) -> None:
    """Tell the proxy reading ``path`` to change its mode (atomically: write, then rename)."""
    if name not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}, not {name!r}")
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"mode": name, "delay_ms": delay_ms}), encoding="utf-8")
    temporary.replace(path)


class Proxy:
    def __init__(self, target: tuple[str, int], control: Path) -> None:
        self.target = target
        self.control = control
        self.mode = Mode()
        self._changed = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    async def watch(self) -> None:
        seen = None
        while True:
            try:
                found = self.control.stat()
                stamp: tuple[int, int] | None = (found.st_ino, found.st_mtime_ns)
            except OSError:
                stamp = None
            if stamp != seen:
                seen = stamp
                self.mode = Mode.read(self.control)
                self._changed.set()
                self._changed = asyncio.Event()
                if self.mode.name == "reset":
                    for writer in list(self._writers):
                        _reset(writer)
            await asyncio.sleep(POLL_SECONDS)

    async def _wait_unstalled(self) -> None:
        while self.mode.name == "stall":
            await self._changed.wait()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self._wait_unstalled()
                if self.mode.name == "slow" and self.mode.delay_ms:
                    await asyncio.sleep(self.mode.delay_ms / 1000)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        if self.mode.name == "reset":
            _reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client_writer)
            return
        self._writers.update({client_writer, upstream_writer})
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer),
                                 self._pipe(upstream_reader, client_writer))
        finally:
            self._writers.difference_update({client_writer, upstream_writer})


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def serve(listen: tuple[str, int], target: tuple[str, int], control: Path) -> None:
    proxy = Proxy(target, control)
    server = await asyncio.start_server(proxy.handle, *listen)
    print(f"proxy: {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}, mode from {control}",
          flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), proxy.watch())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal.proxy")
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--control", required=True, type=Path, help="the mode file")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(_address(args.listen), _address(args.target), args.control))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
