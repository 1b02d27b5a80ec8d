"""One module per registered experiment (see ``runners.registry``)."""
