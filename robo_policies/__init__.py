"""robo-policies: a robot learning stack from demonstrations to deployment."""

__version__ = "0.1.0"
