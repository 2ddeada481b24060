"""Files written by worker threads while the next batch is inferred, with bounded memory."""
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Optional


class WriteQueue:
    """Runs write tasks on ``workers`` threads, at most ``2 * workers`` waiting.

    With 0 workers every task runs at once in the caller's thread. A failed
    task's exception is raised in the caller when the queue next waits for
    it (:meth:`submit` when full, :meth:`drain`).

    Args:
        workers (int): Writer threads; 0 writes in the caller's thread.
    """

    def __init__(self, workers: int = 0) -> None:
        self.workers = workers
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pending: Deque[Future] = deque()

    def __len__(self) -> int:
        """Tasks submitted and not yet waited for."""
        return len(self._pending)

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        """Run ``task(*args)`` now (no workers) or on a worker, waiting while the queue is full."""
        if self.workers <= 0:
            task(*args)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix='mmxai-write')
        self._pending.append(self._pool.submit(task, *args))
        while len(self._pending) > 2 * self.workers:
            self._pending.popleft().result()  # re-raises a failed write here

    def drain(self) -> None:
        """Wait for every submitted task; re-raises the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Drain, then stop the threads."""
        self.drain()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
