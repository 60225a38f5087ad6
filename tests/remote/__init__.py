"""By-value delivery: pre-encoded CDR, fallback readers, plain Cyclone DDS peers, two hosts."""
