"""The rehearsal's TCP proxy on loopback: it passes bytes both ways, holds them while stalled
and lets them through after, slows them, and resets connections, as its mode file says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rehearsal.proxy import Proxy, write_mode


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _mode_is(proxy: Proxy, name: str) -> None:
    while proxy.mode.name != name:
        await asyncio.sleep(0.05)


async def _scenario(control: Path) -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = Proxy(echo.sockets[0].getsockname()[:2], control)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    watch = asyncio.create_task(proxy.watch())
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    # passing
    writer.write(b"a")
    assert await asyncio.wait_for(reader.read(1), 10) == b"a"
    # stalled: held, then delivered once the stall ends
    write_mode(control, "stall")
    await asyncio.wait_for(_mode_is(proxy, "stall"), 10)
    writer.write(b"b")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(read := asyncio.ensure_future(reader.read(1))), 0.5)
    write_mode(control, "slow", delay_ms=50)
    await asyncio.wait_for(_mode_is(proxy, "slow"), 10)
    assert await asyncio.wait_for(read, 10) == b"b"
    writer.write(b"c")
    assert await asyncio.wait_for(reader.read(1), 10) == b"c"
    # reset: the connection is cut with an RST, and new ones too
    write_mode(control, "reset")
    await asyncio.wait_for(_mode_is(proxy, "reset"), 10)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 10)
    reader2, _ = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader2.read(1), 10)
    watch.cancel()
    server.close()
    echo.close()


def test_the_proxy_passes_stalls_slows_and_resets_as_its_mode_file_says(tmp_path):
    asyncio.run(_scenario(tmp_path / "mode.json"))


def test_an_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode: one of pass, slow, stall, reset"):
        write_mode(tmp_path / "mode.json", "teleport")
