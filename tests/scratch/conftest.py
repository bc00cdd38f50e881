"""One BLAS and one torch thread for the NumPy engine's tests.

The engine's matrices are small; when pytest runs in several processes on few
cores, multi-threaded BLAS calls wait on descheduled threads and run many times
slower than on one thread.
"""

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_blas_thread():
    """NumPy's BLAS on one thread too (torch's is set for the whole suite in tests/conftest.py)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
