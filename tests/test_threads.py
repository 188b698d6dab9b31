import subprocess
import sys
from collections import namedtuple

import numba
import pytest
import torch

from eavatar import threads
from eavatar.threads import CoreWatch, ThreadGovernor, cpu_threads, set_threads, threads_for

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
OwnTimes = namedtuple("OwnTimes", "user system children_user children_system")


@pytest.mark.parametrize("cores, others, expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 3.0, 1), (4, 1.2, 3), (1, 0.0, 1)])
def test_threads_leave_the_cores_others_keep_busy(cores, others, expected):
    assert threads_for(cores, others) == expected


def test_cpu_threads_sets_and_restores_torch_and_numba():
    set_threads(2)  # a known start (OMP_NUM_THREADS may differ from numba's count)
    before = torch.get_num_threads(), numba.get_num_threads()
    with cpu_threads(1):
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
    assert (torch.get_num_threads(), numba.get_num_threads()) == before


class FakeClock:
    """/proc as psutil reads it: per-CPU busy and idle seconds, this process's own, and a clock."""

    def __init__(self, monkeypatch):
        self.busy = [0.0, 0.0, 0.0]
        self.own = 0.0
        self.now = 0.0
        monkeypatch.setattr(threads.psutil, "cpu_times", lambda percpu: [CpuTimes(b, 0, 0, 100.0, 5.0, 0, 0, 0, 0, 0) for b in self.busy])
        monkeypatch.setattr(threads.psutil, "Process", lambda: type("P", (), {"cpu_times": lambda _: OwnTimes(self.own, 0.0, 0.0, 0.0)})())
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.now)

    def advance(self, seconds, busy, own):
        self.now += seconds
        self.busy = [b + seconds * x for b, x in zip(self.busy, busy)]
        self.own += seconds * own


def test_core_watch_counts_other_processes_on_its_cores_only(monkeypatch):
    clock = FakeClock(monkeypatch)
    watch = CoreWatch(cores=[0, 1])
    clock.advance(10, busy=[1.0, 0.5, 1.0], own=0.5)  # CPU 2 is not ours: its load does not count
    assert watch.others() == pytest.approx(1.0)  # 1.5 busy cores, half a core of them ours
    clock.advance(10, busy=[1.0, 1.0, 0.0], own=2.0)
    assert watch.others() == pytest.approx(0.0)


def test_governor_drops_to_one_thread_under_load_and_comes_back(monkeypatch):
    clock = FakeClock(monkeypatch)
    with cpu_threads(None):  # restores the counts afterwards
        torch.set_num_threads(2)
        governor = ThreadGovernor(watch=CoreWatch(cores=[0, 1]))
        clock.advance(5, busy=[1.0, 1.0, 0.0], own=2.0)  # alone: both cores are ours
        assert governor.update() is None and torch.get_num_threads() == 2
        clock.advance(5, busy=[1.0, 1.0, 0.0], own=1.1)  # another process took a core
        assert governor.update() == 1
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
        assert "other processes kept 0.9 busy" in governor.describe()
        clock.advance(5, busy=[1.0, 0.1, 0.0], own=1.0)  # it finished
        assert governor.update() == 2 and torch.get_num_threads() == 2


def test_fixed_threads_are_not_watched():
    with cpu_threads(None):
        governor = ThreadGovernor(fixed=1)
        assert governor.watch is None
        governor.update()
        assert torch.get_num_threads() == 1 and governor.describe() == "compute threads: 1 (fixed)"


def test_core_watch_sees_a_real_busy_process():
    watch = CoreWatch()
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"])
    spinner.wait()
    assert watch.others() > 0.5  # one core spun for most of the window (plus the interpreter's start)
