"""How changes are noticed: one module per backend, one contract (see ``base``)."""
