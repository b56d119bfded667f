"""The virtual clock wraps only the SDKs already imported, and one imported later in time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh interpreter: whether anthropic is imported is the point, and this process has
# imported it long ago for other tests.
LATE_IMPORT = textwrap.dedent(
    """
    import sys, time
    from pytest_crewguard.virtual_clock import patch_loaded, virtual_waits

    waits = []
    with virtual_waits(lambda seconds, kind: waits.append((seconds, kind))):
        print("anthropic imported by the guard:", "anthropic" in sys.modules)
        import anthropic
        from anthropic._models import FinalRequestOptions

        client = anthropic.Anthropic(api_key="sk-ant-placeholder", base_url="http://127.0.0.1:9")
        options = FinalRequestOptions.construct(method="post", url="/v1/messages")
        patch_loaded()  # what the guarded cassette does before it answers a request
        started = time.monotonic()
        client._sleep_for_retry(retries_taken=0, max_retries=2, options=options, response=None)
        print("slept:", round(time.monotonic() - started, 2), "virtual:", waits)
    """
)


def test_an_sdk_is_wrapped_when_imported_not_before() -> None:
    done = subprocess.run([sys.executable, "-c", LATE_IMPORT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "anthropic imported by the guard: False"
    slept, virtual = lines[1].removeprefix("slept: ").split(" virtual: ")
    assert float(slept) < 0.2  # the SDK's backoff (about half a second) went to the clock instead
    assert "'retry'" in virtual and float(virtual.split("(")[1].split(",")[0]) > 0.2
