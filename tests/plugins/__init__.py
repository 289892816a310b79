"""Toy plugins for the tests: modules named in ``ROBO_PLUGINS`` (``plugins.<module>``) that add
a head, an RL algorithm or a robot kind from outside the project; their config groups live in
``configs/`` next to them."""
