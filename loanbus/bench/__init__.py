"""``loanbus bench``: loanbus measured side by side with the transports it replaces.

``suite.run`` measures latency and throughput for each comparison of ``channels.COMPARISONS``
in fresh worker processes (``runner``) and ``report`` prints the table, the ratios and the
targets, and writes JSON and a PNG plot. See docs/performance.md.
"""
