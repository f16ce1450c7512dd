"""Job store: the interface every executor and the API use, and its SQL implementation."""

from vigia.store.base import JobFilter, JobPage, JobStore, NewJob, Snapshot, UnitOfWork, WriteSet

__all__ = ["JobFilter", "JobPage", "JobStore", "NewJob", "Snapshot", "UnitOfWork", "WriteSet"]
