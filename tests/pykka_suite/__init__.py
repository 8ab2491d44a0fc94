"""pykka's own test suite, run on HostedActor's runtimes: see run.py (not collected by default)."""
