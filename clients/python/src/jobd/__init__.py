"""jobd: the Python client and worker of the jobd background-job service.

    import jobd

    client = jobd.Client("http://127.0.0.1:8000")
    job = client.submit("extraction", {"path": "a.pdf"})
    print(client.wait(job["job_id"])["result"])

    worker = jobd.Worker("http://127.0.0.1:8000", concurrency=4)

    @worker.handler("extraction")
    def extract(job):
        return {"pages": 3}

    worker.run()
"""

from .client import TERMINAL, Client
from .context import JobContext, current_job
from .errors import (
    ApiError,
    ClaimLostError,
    JobAlreadyCompletedError,
    JobCancelled,
    JobNotFoundError,
    PermanentError,
    RetryLater,
)
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ClaimLostError",
    "Client",
    "JobAlreadyCompletedError",
    "JobCancelled",
    "JobContext",
    "JobNotFoundError",
    "PermanentError",
    "RetryLater",
    "TERMINAL",
    "Worker",
    "current_job",
]
