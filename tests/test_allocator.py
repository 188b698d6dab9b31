import subprocess
import sys
import textwrap

import pytest

#: In a fresh interpreter, what a training step does: hold ten 4 MB blocks at once, free them
#: all, again and again; the page faults of the third round (glibc's defaults: the heap's top is
#: given back after each round and refaulted; kept: the freed pages serve the next round).
ROUND_FAULTS = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from eavatar.allocator import keep_freed_memory
    if sys.argv[1] == "kept":
        assert keep_freed_memory()
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [np.ones(1024 * 1024, np.float32) for _ in range(10)]
        del blocks
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def faults_of_a_round(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUND_FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_blocks_are_reused_without_page_faults():
    assert faults_of_a_round("default") > 2000  # of the 10,240 pages of 40 MB
    assert faults_of_a_round("kept") < 100
