"""The ``robo`` command-line interface."""
