"""The embedded demo: a small simulated estate on 127.0.0.1 and the daemon
probing it with `config/demo.yml`, so `/metrics`, the status page and a
failing check are visible at once (`make run`)."""
