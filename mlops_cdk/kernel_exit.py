"""Ending app.py without waiting for jsii's Node process to wind down.

jsii runs aws-cdk-lib in a Node process and, at interpreter exit, tells it to exit and then
waits for it (``stop`` in jsii/_kernel/providers/process.py). By then ``app.synth()`` has
returned, so the cloud assembly is on disk and Node has nothing left to do for us. Yet Node's
``process.exit`` is slow here: it waits for V8's background threads, and after a synthesis
those are still optimising the WebAssembly of CDK's template validation
(@aws/cloudformation-validate, 8.9 MB), code that will never run again. nodejs/node#36616
reports the same wait (process.exit held ~11 s by a large module's tier-up). Measured with
strace on a staging synthesis: 0.6-0.9 s of the Node process's exit, the CLI waiting on it.

So app.py hands Node its exit message and leaves: Node still runs its own exit handlers (it
removes its jsii-kernel-* work directory) and ends a moment after app.py, on its own. Nothing
is written after the assembly, so the CDK CLI reads a complete one.
"""

from __future__ import annotations

import atexit
import subprocess
from collections.abc import Callable

import jsii

# What jsii's stop writes before it waits; the kernel ends on it (jsii-runtime's KernelHost).
_EXIT_MESSAGE = b'{"exit":0}\n'


def node_process() -> tuple[subprocess.Popen[bytes], Callable[[], None]] | None:
    """jsii's Node process and the stop jsii registered for it at exit, where jsii 1.x keeps
    them (``jsii.kernel.provider._process``, a private attribute); None anywhere else."""
    node = getattr(getattr(jsii.kernel, "provider", None), "_process", None)
    process = getattr(node, "_process", None)
    stop = getattr(node, "stop", None)
    if not isinstance(process, subprocess.Popen) or stop is None or process.stdin is None:
        return None
    return process, stop


def leave_node_to_exit() -> bool:
    """Tell jsii's Node process to exit and do not wait for it; call only after
    ``app.synth()``, as the last thing the process does with jsii.

    True if done. False if this jsii keeps its Node process elsewhere (:func:`node_process`):
    then nothing changes and jsii's own stop still waits for Node at exit (a test checks that
    the pinned jsii takes the fast way: tests/test_app_py.py).
    """
    found = node_process()
    if found is None:
        return False
    process, stop = found
    assert process.stdin is not None  # node_process checked it
    atexit.unregister(stop)
    try:
        process.stdin.write(_EXIT_MESSAGE)
        process.stdin.close()
    except OSError:  # Node has already gone: there is nothing to wait for either
        pass
    return True
