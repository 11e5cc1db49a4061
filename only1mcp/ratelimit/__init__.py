"""Rate limits that hold across every worker of a gateway: the supervisor owns each token bucket and
leases slices of it to workers, which admit requests from their slices without a bus message per request.

``limits``: what a limit is called and how a refusal reads; ``book``: the supervisor's buckets and leases;
``holding``: a worker's leased tokens. Pure arithmetic, no I/O: the processes drive it with their clocks.
"""
