"""The job domain: models, schemas, the state table, the repository, the service and the poller."""
