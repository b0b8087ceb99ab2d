"""The Kafka backend: topics, the producer, the worker, the changelog and the models topic."""
