"""One BLAS and one torch thread for the NumPy engine's tests.

The engine's matrices are small; when pytest runs in several processes on few
cores, multi-threaded BLAS calls wait on descheduled threads and run many times
slower than on one thread.
"""

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(threads)
