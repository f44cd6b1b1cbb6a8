"""Shared fixtures: unique segment names (tests run in parallel with the C++ suites), and
forked helper processes that report back through a pipe."""
import itertools
import os
import sys
import time

import pytest

import pipecache

_counter = itertools.count()


@pytest.fixture
def segment_name():
    """A segment name no other test (or test process) uses; removed afterwards."""
    name = f"pyt-{os.getpid()}-{next(_counter)}"
    pipecache.Cache.remove(name)
    yield name
    pipecache.Cache.remove(name)


@pytest.fixture
def cache(segment_name):
    return pipecache.Cache.create(segment_name, byte_budget="8M", default_ttl=60)


class Child:
    """A forked process running fn(); its return value (bytes) comes back through a pipe."""

    def __init__(self, fn):
        self.read_fd, write_fd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # child: never returns into pytest
            code = 0
            try:
                os.close(self.read_fd)
                out = fn() or b""
                os.write(write_fd, out if isinstance(out, bytes) else str(out).encode())
            except BaseException as e:  # report, never unwind into the parent's test runner
                os.write(write_fd, f"child failed: {e!r}".encode())
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)

    def result(self, timeout=30):
        deadline = time.monotonic() + timeout
        chunks = []
        os.set_blocking(self.read_fd, False)
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.kill(self.pid, 9)
                    break
                time.sleep(0.005)
        os.close(self.read_fd)
        _, status = os.waitpid(self.pid, 0)
        out = b"".join(chunks)
        assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
        return out


@pytest.fixture
def fork_child():
    children = []

    def start(fn):
        c = Child(fn)
        children.append(c)
        return c

    yield start
    for c in children:  # a failed test leaves no process behind
        try:
            os.kill(c.pid, 9)
            os.waitpid(c.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def pytest_report_header(config):
    return f"pipecache from {os.path.dirname(pipecache.__file__)}, python {sys.executable}"
