"""The code behind each `robo` command, above the libraries it drives.

One module a command: `evaluate` (robo eval), `compose` (robo compose's weight search),
`demo`, `bench`, `deploy`; `config` holds every command's typed settings.
"""
