"""Persistent state: dedupe, circuit breaker and per-host locks survive a restart of the service.

state.json is read and written under an exclusive flock (every process and thread opens the lock
file itself, so flock serialises threads too) and replaced atomically, never half-written.
Per-host run locks are separate flock files: the kernel releases them when a process dies, so a
crash never leaves a host locked forever.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


class StateError(RuntimeError):
    """The state file cannot be trusted; refusing is safer than forgetting an open breaker."""


def empty():
    # dedupe: fingerprints whose run has ENDED (within the window); inflight: fingerprints whose run was
    # queued or started and has not ended yet, with the owning process (a crash leaves them behind:
    # Engine.recover records them as interrupted); last_run: the end of the last playbook run (metrics).
    return {"version": 1, "dedupe": {}, "inflight": {}, "mitigations": [], "breaker": {"open": False},
            "running": {}, "last_run": {}}


def process_start(pid):
    """The kernel's start time of `pid` (clock ticks since boot), so a reused pid is not taken for ours."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError, TypeError):
        return None


def this_process():
    pid = os.getpid()
    return {"pid": pid, "pid_start": process_start(pid)}


def owner_alive(entry):
    """Is the process recorded in `entry` ({pid, pid_start}) still the one that wrote it?"""
    pid = entry.get("pid")
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    started = entry.get("pid_start")
    return started is None or process_start(pid) in (None, started)


class StateStore:
    def __init__(self, state_dir):
        self.dir = Path(state_dir)
        self.path = self.dir / "state.json"
        self.lock_path = self.dir / "state.lock"

    @contextmanager
    def transaction(self):
        """Yield the state dict; changes are saved atomically when the block ends without error."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)

    def peek(self):
        """Read without the lock (writes are atomic renames) and without creating anything: for status."""
        return self._read()

    def _read(self):
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return empty()
        try:
            data = json.loads(text)
        except ValueError as err:
            raise StateError(f"{self.path} is corrupt ({err}); fix or move it away (this also resets "
                             "dedupe and the breaker)") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path} is not a JSON object; fix or move it away")
        return {**empty(), **data}

    def _write(self, data):
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".state.", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def throwaway_copy(self, directory):
        """A copy for replay: the decision path runs against it and the real state stays untouched."""
        copy = StateStore(directory)
        copy.dir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # writes are atomic renames: a plain copy is a consistent snapshot
            shutil.copyfile(self.path, copy.path)
        return copy

    def host_lock(self, host):
        return HostLock(self.dir / "locks" / f"{host}.lock")


class HostLock:
    """Non-blocking exclusive lock for one host: a second run is refused, never queued behind."""

    def __init__(self, path):
        self.path = Path(path)
        self._handle = None

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self):
        if self._handle:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None



def prune(data, now, dedupe_window_s, breaker_window_s):
    """Forget dedupe entries and mitigations older than their windows."""
    data["dedupe"] = {fp: e for fp, e in data["dedupe"].items() if now - e.get("ts", 0) < dedupe_window_s}
    data["mitigations"] = [m for m in data["mitigations"] if now - m.get("ts", 0) < breaker_window_s]
