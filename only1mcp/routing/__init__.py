"""Choosing a backend replica: balancers, circuit breakers, health."""
