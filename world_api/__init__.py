"""WorldService: policy, evaluation, allocation, store and HTTP API."""
