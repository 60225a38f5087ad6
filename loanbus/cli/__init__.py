"""The ``loanbus`` command line."""
