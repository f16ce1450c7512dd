"""The distributed executor: each stage run is a Celery task over Redis.

Celery carries only "run stage run N" messages (several runs of one stage in a message
under a backlog); what runs next, retries, joins,
degradation and dead-lettering are decided by the same coordinator and orchestrator as in
embedded mode. A pool process hands what it finished to the housekeeping processes of the
workers (`handoff`), which settle it in batches and send what became ready. The store stays
the record: a message lost with a Redis restart is sent again from it, a duplicate finds
its stage run no longer ready (or its outcome refused) and does nothing.

    messages    what a message carries, and sending batches of them
    app         the Celery app with Vigía's settings and its tasks
    runtime     running a message's stage runs in a pool process
    keeper      a pool process's long stage runs: claims, progress, leases, cancellation
    handoff     finished attempts handed to the settlers over Redis
    dispatcher  settling, sending what became ready, the API process's dispatcher
    worker      `vigia worker`: Celery's worker and its housekeeping process
    inspect     queue depths, workers online, broker ping
    transport   kombu's Redis transport with one client per channel
"""

from vigia.executors.celery.app import make_celery
from vigia.executors.celery.dispatcher import CeleryExecutor, dispatch_ready, maintain_once, settle_finished
from vigia.executors.celery.inspect import BrokerQueues, broker_depths, consumers_of, ping, queue_facts
from vigia.executors.celery.messages import TASK_NAME, send
from vigia.executors.celery.worker import HOUSEKEEPING_DIED_EXIT_CODE, HOUSEKEEPING_PROCESS_NAME, run_worker

__all__ = [
    "HOUSEKEEPING_DIED_EXIT_CODE",
    "HOUSEKEEPING_PROCESS_NAME",
    "TASK_NAME",
    "BrokerQueues",
    "CeleryExecutor",
    "broker_depths",
    "consumers_of",
    "dispatch_ready",
    "maintain_once",
    "make_celery",
    "ping",
    "queue_facts",
    "run_worker",
    "send",
    "settle_finished",
]
